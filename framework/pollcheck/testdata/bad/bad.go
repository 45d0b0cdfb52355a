package bad

import (
	"context"
	"errors"

	. "github.com/onsi/gomega"
)

func read(ctx context.Context) (string, error) { return "", errors.New("not yet") }

// lookup asserts globally; polling it ends the spec on the first miss.
func lookup(ctx context.Context) string {
	v, err := read(ctx)
	Expect(err).NotTo(HaveOccurred())
	return v
}

// indirect asserts only through lookup.
func indirect(ctx context.Context) string { return lookup(ctx) }

func direct(ctx context.Context) {
	Eventually(ctx, func(ctx context.Context) string {
		v, err := read(ctx)
		Expect(err).NotTo(HaveOccurred())
		return v
	}).Should(Equal("x"))
}

func viaHelper(ctx context.Context) {
	Consistently(ctx, func(ctx context.Context) string { return indirect(ctx) }).Should(BeEmpty())
}

func polledByName(ctx context.Context) {
	Eventually(ctx, lookup).Should(Equal("x"))
}

func closureByName(ctx context.Context) {
	check := func() { Fail("no") }
	Eventually(func() { check() }).Should(Succeed())
}

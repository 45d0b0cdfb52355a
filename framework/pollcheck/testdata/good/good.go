package good

import (
	"context"
	"errors"

	. "github.com/onsi/gomega"
)

func read(ctx context.Context) (string, error) { return "", errors.New("not yet") }

func polled(ctx context.Context) {
	Eventually(ctx, func(g Gomega, ctx context.Context) string {
		v, err := read(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}).Should(Equal("x"))
	Eventually(ctx, read).Should(Equal("x"))
	Eventually(ctx, func(ctx context.Context) (string, error) { return read(ctx) }).Should(Equal("x"))
	// Outside a polled function a global assertion is right.
	v, err := read(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(v).To(Equal("x"))
}

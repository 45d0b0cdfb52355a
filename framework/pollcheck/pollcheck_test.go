package pollcheck

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSuites is the project's own gate: no suite may poll a function that asserts globally.
func TestSuites(t *testing.T) {
	root := filepath.Join("..", "..", "suites")
	findings, err := Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("%s (assert through the polled function's Gomega argument, or return an error)", f)
	}
}

func TestFindsEveryKind(t *testing.T) {
	findings, err := Dir(filepath.Join("testdata", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.Async+":"+f.Via+"@"+strconv.Itoa(f.At.Line))
	}
	want := []string{
		"Eventually:@25",           // Expect in the polled literal
		"Consistently:indirect@31", // a helper that asserts through another helper
		"Eventually:lookup@35",     // a polled helper named directly
		"Eventually:check@40",      // a named closure called from the polled literal
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findings:\n got  %v\n want %v", got, want)
	}
	for _, f := range findings {
		if !strings.Contains(f.String(), "bad.go") {
			t.Errorf("finding %q does not name the file", f)
		}
	}
}

func TestAcceptsGomegaArgumentAndErrors(t *testing.T) {
	findings, err := Dir(filepath.Join("testdata", "good"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("unexpected finding: %s", f)
	}
}

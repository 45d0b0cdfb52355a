// Package pollcheck finds a mistake that turns a retried check into a one-shot check: a
// global gomega assertion (Expect, Ω, Fail) inside a function polled by Eventually or
// Consistently. Gomega does not intercept those: the first failed poll fails the spec at
// once, however long the timeout. A polled function must assert through the Gomega it is
// given (func(g Gomega, ctx context.Context) ...) or return an error instead.
//
// The check is syntactic and works on one directory tree: a helper counts as asserting when
// its body makes a global assertion or calls, by name, another asserting helper declared in
// the tree. Matching by name can only over-report, never miss such a helper.
package pollcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// Finding is one global assertion reachable from a polled function.
type Finding struct {
	Poll  token.Position // the Eventually/Consistently call
	At    token.Position // the assertion, or the call of an asserting helper
	Via   string         // the helper called, empty for an assertion in the polled function itself
	Async string         // "Eventually" or "Consistently"
}

func (f Finding) String() string {
	if f.Via == "" {
		return fmt.Sprintf("%s: global assertion inside the function polled by %s at %s", f.At, f.Async, f.Poll)
	}
	return fmt.Sprintf("%s: %s, which asserts globally, is called from the function polled by %s at %s", f.At, f.Via, f.Async, f.Poll)
}

var globalAsserts = map[string]bool{"Expect": true, "ExpectWithOffset": true, "Ω": true, "Fail": true}

// Dir checks every .go file under root.
func Dir(root string) ([]Finding, error) {
	fset := token.NewFileSet()
	var files []*ast.File
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return check(fset, files), nil
}

func check(fset *token.FileSet, files []*ast.File) []Finding {
	// Named functions: declared funcs/methods and closures assigned to a name.
	bodies := map[string][]*ast.BlockStmt{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				if x.Body != nil {
					bodies[x.Name.Name] = append(bodies[x.Name.Name], x.Body)
				}
			case *ast.AssignStmt:
				for i, r := range x.Rhs {
					if fl, ok := r.(*ast.FuncLit); ok && i < len(x.Lhs) {
						if name := calleeName(x.Lhs[i]); name != "" {
							bodies[name] = append(bodies[name], fl.Body)
						}
					}
				}
			}
			return true
		})
	}
	// Asserting helpers, to a fixed point.
	asserting := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, bs := range bodies {
			if asserting[name] {
				continue
			}
			for _, b := range bs {
				if len(assertions(b, asserting)) > 0 {
					asserting[name], changed = true, true
					break
				}
			}
		}
	}

	var out []Finding
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			async := calleeName(call.Fun)
			if async != "Eventually" && async != "Consistently" {
				return true
			}
			for _, arg := range call.Args {
				switch a := arg.(type) {
				case *ast.FuncLit:
					for _, hit := range assertions(a.Body, asserting) {
						out = append(out, Finding{Poll: fset.Position(call.Pos()), At: fset.Position(hit.pos), Via: hit.via, Async: async})
					}
				default:
					if name := calleeName(arg); name != "" && asserting[name] {
						out = append(out, Finding{Poll: fset.Position(call.Pos()), At: fset.Position(arg.Pos()), Via: name, Async: async})
					}
				}
			}
			return true
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.String() < out[j].At.String() })
	return out
}

type hit struct {
	pos token.Pos
	via string
}

// assertions lists the global assertions in body and its calls of asserting helpers. Function
// literals nested in body count too: they usually run inside the poll (a loop's closure).
func assertions(body ast.Node, asserting map[string]bool) []hit {
	var hits []hit
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); ok && globalAsserts[id.Name] {
			hits = append(hits, hit{pos: call.Pos()})
		} else if name := calleeName(call.Fun); name != "" && asserting[name] {
			hits = append(hits, hit{pos: call.Pos(), via: name})
		}
		return true
	})
	return hits
}

// calleeName is the name a call or function value refers to: f, x.f, x.y.f.
func calleeName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}

package config

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2/unstable"
)

func TestDepthProblem(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		doc  string
		want int // line, or 0
	}{
		{"", 0},
		{"a = " + deep(maxDepth) + "\n", 0},
		{"a = " + deep(maxDepth+1) + "\n", 1},
		{"\n\na = [\n" + strings.Repeat("[\n", maxDepth) + "]", 3 + maxDepth},
		{"a = {b = {c = " + deep(maxDepth-2) + "}}\n", 0},
		{"a = {b = {c = " + deep(maxDepth-1) + "}}\n", 1},
		{"[[a]]\nb = " + deep(maxDepth) + "\n", 0},
		// Brackets in comments and strings do not count, however they are
		// quoted, and a string or comment ends where TOML says it does.
		{"# " + deep(maxDepth+1) + "\n", 0},
		{"a = '" + strings.Repeat("[", 99) + "'\n", 0},
		{`a = "\"` + strings.Repeat("[", 99) + `\\"` + "\n", 0},
		{`a = "\\"` + strings.Repeat("[", 99) + "\n", 1},
		{"a = \"[[[\nb = " + deep(maxDepth+1) + "\n", 2},
		{"a = '''\n" + strings.Repeat("[", 99) + "\n'''\n", 0},
		{`a = """` + "\\\"\"\"\n" + strings.Repeat("[", 99) + `"""` + "\n", 0},
		{`a = """x"""""` + strings.Repeat("[", 99) + "\n", 1},
		{`a = """x"""` + strings.Repeat("[", 99) + "\n", 1},
		{"a = '''x'''''\n" + strings.Repeat("[", 99) + "\n", 2},
		{"a = \"\"\"\n\n\n" + strings.Repeat("[", 99), 0},
		{"]]]]\na = " + deep(maxDepth) + "\n", 0},
	}
	for _, tt := range tests {
		if got := depthProblem([]byte(tt.doc)); got != tt.want {
			t.Errorf("depthProblem(%q) = %d; want %d", clip(tt.doc), got, tt.want)
		}
	}
}

// TestDeepNesting is the regression test for a file that crashed the
// process: a million nested arrays overflowed the stack of the TOML
// scanner (a fatal error, not a panic).
func TestDeepNesting(t *testing.T) {
	doc := "[server]\nlisten = [\n" + strings.Repeat(strings.Repeat("[", 4000)+"\n", 255)
	_, err := Parse("deep.toml", []byte(doc))
	want := "deep.toml:3: arrays and inline tables nest more than 32 deep"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v; want %s", err, want)
	}
}

// scannerDepth returns how deeply the arrays and inline tables of the
// expressions that the TOML scanner returns for data nest.
func scannerDepth(data []byte) int {
	var p unstable.Parser
	p.Reset(data)
	most := 0
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind == unstable.KeyValue {
			most = max(most, nodeDepth(e.Value()))
		}
	}
	return most
}

func nodeDepth(n *unstable.Node) int {
	switch n.Kind {
	case unstable.KeyValue:
		return nodeDepth(n.Value())
	case unstable.Array, unstable.InlineTable:
		most := 0
		for it := n.Children(); it.Next(); {
			most = max(most, nodeDepth(it.Node()))
		}
		return most + 1
	}
	return 0
}

package config

import "bytes"

// maxDepth bounds how deeply arrays and inline tables may nest. The TOML
// scanner descends into them recursively, so a file that opens a million
// arrays would exhaust the goroutine stack: a fatal error, which recover
// cannot catch. The schema needs a depth of 3 at most (an array in an
// inline table in an inline table); a table header counts 1 or 2.
const maxDepth = 32

// depthProblem returns the line on which the brackets and braces of data
// nest deeper than maxDepth, or 0. Brackets in strings and comments do not
// count. Where this scan and the TOML scanner could disagree about where a
// string or comment ends, the document is not valid TOML and the scanner
// stops with a syntax error at that point.
func depthProblem(data []byte) int {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			line++
		case '#':
			i = endOfLine(data, i) - 1 // the loop then counts the newline
		case '"', '\'':
			i, line = skipString(data, i, line)
		case '[', '{':
			if depth++; depth > maxDepth {
				return line
			}
		case ']', '}':
			depth = max(depth-1, 0) // an unbalanced close is a syntax error
		}
	}
	return 0
}

// endOfLine returns the offset of the first newline at or after i, or
// len(data).
func endOfLine(data []byte, i int) int {
	if j := bytes.IndexByte(data[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(data)
}

// skipString skips the string whose opening quote is at i. It returns the
// offset of its last byte and the line that byte is on.
func skipString(data []byte, i, line int) (int, int) {
	q := data[i]
	if bytes.HasPrefix(data[i:], []byte{q, q, q}) {
		return skipMultiline(data, i+3, line)
	}
	for i++; i < len(data) && data[i] != q && data[i] != '\n'; i++ {
		if q == '"' && data[i] == '\\' && i+1 < len(data) && data[i+1] != '\n' {
			i++ // an escaped byte, which may be a quote
		}
	}
	if i < len(data) && data[i] == '\n' {
		i-- // unterminated: the loop in depthProblem counts the newline
	}
	return i, line
}

// skipMultiline skips a multi-line string whose content starts at i, up to
// and including its closing run of three to five quotes (TOML allows one or
// two quotes right before the closing three).
func skipMultiline(data []byte, i, line int) (int, int) {
	q := data[i-1]
	for ; i < len(data); i++ {
		switch c := data[i]; {
		case c == '\n':
			line++
		case c == '\\' && q == '"' && i+1 < len(data):
			i++
			if data[i] == '\n' {
				line++
			}
		case c == q && bytes.HasPrefix(data[i:], []byte{q, q, q}):
			for i+1 < len(data) && data[i+1] == q {
				i++
			}
			return i, line
		}
	}
	return len(data), line
}

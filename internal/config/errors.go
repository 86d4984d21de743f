package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// maxErrors is the number of problems an [Errors] lists at most; a file
// with more is reported as having "too many errors", like the Go compiler
// does.
const maxErrors = 20

// Error is one problem in a configuration.
type Error struct {
	File string // the name given to Parse or Load; "" from Validate
	Line int    // 1-based line of the problem; 0 when it has none
	Key  string // dotted key, like "server.rate-limit.burst"; "" when none
	Msg  string // the reason
}

// Error formats the problem as "file:line: key: reason", leaving out the
// parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is the error returned for a configuration with problems: all of
// them, in the order of their lines, up to 20. Use errors.As to get it.
type Errors struct {
	List []*Error
	// Truncated reports that there were more problems than List holds.
	Truncated bool
}

// Error lists the problems one per line.
func (e *Errors) Error() string {
	lines := make([]string, 0, len(e.List)+1)
	for _, x := range e.List {
		lines = append(lines, x.Error())
	}
	if e.Truncated {
		lines = append(lines, (&Error{File: e.file(), Msg: "too many errors"}).Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so that errors.As finds an [*Error].
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, x := range e.List {
		errs[i] = x
	}
	return errs
}

func (e *Errors) file() string {
	if len(e.List) == 0 {
		return ""
	}
	return e.List[0].File
}

// collector gathers the problems of one file, keeping the maxErrors with
// the lowest lines. Problems on the same line keep the order they were
// found in.
type collector struct {
	file string
	list []*Error
	seq  []int // seq[i] orders list[i] among problems on the same line
	n    int   // problems added so far
	full bool  // problems were dropped
}

func (c *collector) add(line int, key, msg string) {
	c.list = append(c.list, &Error{File: c.file, Line: line, Key: key, Msg: msg})
	c.seq = append(c.seq, c.n)
	c.n++
	if len(c.list) > maxErrors {
		c.sort()
		c.list, c.seq = c.list[:maxErrors], c.seq[:maxErrors]
		c.full = true
	}
}

// dropLine forgets the problems reported on line.
func (c *collector) dropLine(line int) {
	for i := len(c.list) - 1; i >= 0; i-- {
		if c.list[i].Line == line {
			c.list = slices.Delete(c.list, i, i+1)
			c.seq = slices.Delete(c.seq, i, i+1)
		}
	}
}

// sort orders the problems by line, then by the order they were found in.
func (c *collector) sort() {
	idx := make([]int, len(c.list))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(c.list[a].Line, c.list[b].Line), cmp.Compare(c.seq[a], c.seq[b]))
	})
	list, seq := make([]*Error, len(idx)), make([]int, len(idx))
	for i, j := range idx {
		list[i], seq[i] = c.list[j], c.seq[j]
	}
	c.list, c.seq = list, seq
}

// err returns the problems as an [*Errors], or nil if there are none.
func (c *collector) err() error {
	if len(c.list) == 0 {
		return nil
	}
	c.sort()
	return &Errors{List: c.list, Truncated: c.full}
}

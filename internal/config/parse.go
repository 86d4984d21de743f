package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Limits on the raw file. They keep the work bounded and catch files that
// are not configuration at all (a binary, a log) before the TOML scanner
// reports something obscure about them.
const (
	// MaxFileSize is the largest configuration file read, in bytes.
	MaxFileSize = 1 << 20
	maxLineLen  = 4096 // bytes, without the line ending
)

// Parse decodes and validates the TOML document data. Keys absent from the
// document keep their [Default] values. filename is used only in messages;
// Parse performs no I/O. The error, if any, is an [*Errors] listing every
// problem found (up to 20), each with its line.
func Parse(filename string, data []byte) (*Config, error) {
	c := Default()
	errs := &collector{file: filename}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if !precheck(data, errs) {
		return nil, errs.err()
	}
	d := newDecoder(c, data, errs)
	d.run()
	c.validate(&checker{errs: errs, pos: d.pos})
	d.reportSyntax()
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks c as Parse checks a decoded file: every value in range,
// no duplicate addresses, prefixes without host bits. It is meant for
// configurations built in code; the [*Errors] it returns has no file names
// or lines.
func (c *Config) Validate() error {
	errs := &collector{}
	c.validate(&checker{errs: errs})
	return errs.err()
}

// precheck rejects what the TOML scanner should never see: an oversized
// file, over-long lines, NUL bytes, invalid UTF-8 and nesting deeper than
// maxDepth. It reports each bad line once and returns whether the document
// may be parsed.
func precheck(data []byte, errs *collector) bool {
	if len(data) > MaxFileSize {
		errs.add(0, "", "file is larger than 1 MiB")
		return false
	}
	n := 0
	for line := range bytes.Lines(data) {
		n++
		if msg := lineProblem(line); msg != "" {
			errs.add(n, "", msg)
		}
	}
	if len(errs.list) > 0 {
		return false
	}
	if n := depthProblem(data); n > 0 {
		errs.add(n, "", fmt.Sprintf("arrays and inline tables nest more than %d deep", maxDepth))
		return false
	}
	return true
}

func lineProblem(line []byte) string {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	switch {
	case len(line) > maxLineLen:
		return fmt.Sprintf("line is longer than %d bytes (%d)", maxLineLen, len(line))
	case bytes.IndexByte(line, 0) >= 0:
		return "line contains a NUL byte"
	case !utf8.Valid(line):
		return "line is not valid UTF-8"
	}
	return ""
}

// defKind says how a table or key got defined, which decides what may be
// added to it later (TOML 1.0: a table is defined once, by a header, by
// dotted keys or inline; a header may only supply a table that a header of
// one of its sub-tables created implicitly).
type defKind uint8

const (
	implicit defKind = iota // created by the header of a sub-table
	header                  // [table]
	dotted                  // a.b = 1 creates table a
	inline                  // a = { b = 1 }
	value                   // a key with a value
)

type definition struct {
	kind defKind
	line int
}

// decoder walks the expressions of one document, checks them against the
// schema and stores their values in a Config.
type decoder struct {
	data     []byte // the document; cap(data) == len(data), see offset
	newlines []int  // offsets of the '\n' bytes in data
	errs     *collector
	fields   map[string]*field      // leaf keys of the schema by dotted path
	tables   map[string]bool        // tables of the schema; "" is the root
	names    []string               // tables and keys of the schema, in order
	defs     map[string]*definition // what the document defined so far
	pos      *positions
	table    []string // key of the current table
	skip     bool     // the current table's header was bad: ignore its keys

	syntax     error // the syntax error that stopped the scan, or nil
	syntaxLine int
}

func newDecoder(c *Config, data []byte, errs *collector) *decoder {
	d := &decoder{
		data:   data[:len(data):len(data)],
		errs:   errs,
		fields: make(map[string]*field),
		tables: map[string]bool{"": true},
		defs:   make(map[string]*definition),
		pos:    &positions{keys: make(map[string]int), elems: make(map[string][]int)},
	}
	for i, b := range d.data {
		if b == '\n' {
			d.newlines = append(d.newlines, i)
		}
	}
	for _, f := range schema(c) {
		d.addTables(f.key)
		d.fields[f.key] = &f
		d.names = append(d.names, f.key)
	}
	return d
}

// addTables records the tables that contain key, outermost first.
func (d *decoder) addTables(key string) {
	for i, b := range []byte(key) {
		if t := key[:i]; b == '.' && !d.tables[t] {
			d.tables[t] = true
			d.names = append(d.names, t)
		}
	}
}

// run decodes every expression, stopping at a syntax error or when the
// collector is full (later problems would be on later lines).
func (d *decoder) run() {
	var p unstable.Parser
	p.Reset(d.data)
	for !d.errs.full && p.NextExpression() {
		d.expression(p.Expression())
	}
	if err := p.Error(); err != nil && !d.errs.full {
		d.syntax = err
		d.syntaxLine = d.lineAt(len(d.data))
		if perr, ok := err.(*unstable.ParserError); ok {
			if off := d.offset(perr.Highlight); off >= 0 {
				d.syntaxLine = d.lineAt(off)
			}
		}
	}
}

// reportSyntax reports the syntax error that stopped run, if any, once
// validation is done. The expression before the error may have been
// decoded and validated ("workers = 0o18" reads as 0o1 followed by junk):
// the syntax error is all that is worth saying about its line.
func (d *decoder) reportSyntax() {
	if d.syntax != nil {
		d.errs.dropLine(d.syntaxLine)
		d.errs.add(d.syntaxLine, "", "syntax error: "+d.syntax.Error())
	}
}

func (d *decoder) expression(e *unstable.Node) {
	switch e.Kind {
	case unstable.Table:
		d.header(e, false)
	case unstable.ArrayTable:
		d.header(e, true)
	case unstable.KeyValue:
		if !d.skip {
			d.keyValue(d.table, e)
		}
	}
}

// header processes a [table] or [[table]] line.
func (d *decoder) header(e *unstable.Node, array bool) {
	segs, line := d.key(e)
	d.table, d.skip = segs, true
	for i := range segs {
		if !d.isTable(segs[:i+1], line, "table") {
			return
		}
	}
	name := keyString(segs)
	if array {
		d.errs.add(line, name, fmt.Sprintf("must be a table: write [%s], not [[%s]]", name, name))
		return
	}
	for i := 1; i < len(segs); i++ {
		if !d.extend(segs[:i], implicit, line) {
			return
		}
	}
	if !d.define(name, header, line) {
		return
	}
	d.pos.keys[name] = line
	d.skip = false
}

// keyValue processes "key = value" in the table whose key is base.
func (d *decoder) keyValue(base []string, e *unstable.Node) {
	rel, line := d.key(e)
	segs := slices.Concat(base, rel)
	for i := len(base) + 1; i < len(segs); i++ {
		if !d.isTable(segs[:i], line, "table") || !d.extend(segs[:i], dotted, line) {
			return
		}
	}
	name, v := keyString(segs), e.Value()
	if d.tables[name] {
		d.inlineTable(segs, v, line)
		return
	}
	f := d.fields[name]
	if f == nil {
		d.unknown(segs, line, "key")
		return
	}
	if !d.define(name, value, line) {
		return
	}
	d.pos.keys[name] = line
	f.decode(d, name, line, v)
}

// inlineTable processes "key = { ... }" for the table segs.
func (d *decoder) inlineTable(segs []string, v *unstable.Node, line int) {
	name := keyString(segs)
	if v.Kind != unstable.InlineTable {
		d.errs.add(line, name, "must be a table, got "+describe(v))
		return
	}
	if !d.define(name, inline, line) {
		return
	}
	d.pos.keys[name] = line
	for it := v.Children(); it.Next(); {
		if n := it.Node(); n.Kind == unstable.KeyValue {
			d.keyValue(segs, n)
		}
	}
}

// key returns the segments of the key of a table header or key/value
// expression, and the line it starts on.
func (d *decoder) key(e *unstable.Node) (segs []string, line int) {
	for it := e.Key(); it.Next(); {
		k := it.Node()
		if segs == nil {
			line = d.nodeLine(k, d.lineAt(len(d.data)))
		}
		segs = append(segs, string(k.Data))
	}
	return segs, line
}

// isTable reports whether segs names a table of the schema, reporting the
// problem if not. what is "table" or "key", for messages about unknown
// names.
func (d *decoder) isTable(segs []string, line int, what string) bool {
	name := keyString(segs)
	if d.tables[name] {
		return true
	}
	if f := d.fields[name]; f != nil {
		d.errs.add(line, name, fmt.Sprintf("must be %s, not a table", f.want))
		return false
	}
	d.unknown(segs, line, what)
	return false
}

// extend records that the table segs gets sub-tables (how is implicit) or
// keys (how is dotted) from the current expression, reporting the problem
// if TOML forbids it.
func (d *decoder) extend(segs []string, how defKind, line int) bool {
	name := keyString(segs)
	def := d.defs[name]
	switch {
	case def == nil:
		d.defs[name] = &definition{kind: how, line: line}
		return true
	case def.kind == inline:
		d.errs.add(line, name, fmt.Sprintf("cannot add to a table defined inline (on line %d)", def.line))
		return false
	case how == dotted && def.kind != dotted:
		d.errs.add(line, name, fmt.Sprintf("cannot add dotted keys to a table defined by a header (on line %d); put the key under that header", def.line))
		return false
	}
	return true
}

// define records the definition of the table or key name, reporting a
// duplicate.
func (d *decoder) define(name string, how defKind, line int) bool {
	def := d.defs[name]
	switch {
	case def == nil || (def.kind == implicit && how == header):
		d.defs[name] = &definition{kind: how, line: line}
		return true
	case how == value:
		d.errs.add(line, name, fmt.Sprintf("duplicate key (first set on line %d)", def.line))
	case how == header && def.kind == header:
		d.errs.add(line, name, fmt.Sprintf("duplicate table [%s] (first defined on line %d)", name, def.line))
	default:
		d.errs.add(line, name, fmt.Sprintf("table defined twice (first %s on line %d)", def.kind, def.line))
	}
	return false
}

// String says how a table was defined, for messages.
func (k defKind) String() string {
	switch k {
	case dotted:
		return "by dotted keys"
	case inline:
		return "inline"
	}
	return "by a header"
}

// unknown reports the unknown key or table segs, with a suggestion.
func (d *decoder) unknown(segs []string, line int, what string) {
	msg := "unknown " + what
	if s := d.suggest(segs); s != "" {
		msg += "; did you mean " + s + "?"
	}
	d.errs.add(line, keyString(segs), msg)
}

// offset returns the offset of b in the document, or -1 if b does not
// point into it. It relies on cap(d.data) == len(d.data): a sub-slice
// starting at offset i has capacity cap(d.data)-i, which is then confirmed
// by comparing addresses.
func (d *decoder) offset(b []byte) int {
	off := cap(d.data) - cap(b)
	if cap(b) == 0 || off < 0 || off >= len(d.data) || &d.data[off] != &b[:1][0] {
		return -1
	}
	return off
}

// lineAt returns the 1-based line of the byte at offset off.
func (d *decoder) lineAt(off int) int {
	n, _ := slices.BinarySearch(d.newlines, off)
	return n + 1
}

// nodeLine returns the line where node n starts, or fallback when the
// parser recorded no position for it (arrays).
func (d *decoder) nodeLine(n *unstable.Node, fallback int) int {
	if n.Raw.Length > 0 {
		return d.lineAt(int(n.Raw.Offset))
	}
	if off := d.offset(n.Data); off >= 0 {
		return d.lineAt(off)
	}
	return fallback
}

// positions maps dotted keys to the lines that set them, so that
// validation can name the line of a bad value.
type positions struct {
	keys  map[string]int   // key or table → line
	elems map[string][]int // array key → line of each element
}

// line returns the line of key, or of the closest enclosing table that the
// document names, or 0. It may be called on a nil *positions.
func (p *positions) line(key string) int {
	for p != nil {
		if n, ok := p.keys[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// elem returns the line of element i of the array key.
func (p *positions) elem(key string, i int) int {
	if p != nil && i < len(p.elems[key]) {
		return p.elems[key][i]
	}
	return p.line(key)
}

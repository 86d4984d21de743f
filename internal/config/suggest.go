package config

import "strings"

// maxSuggestDistance is the largest edit distance at which a known key is
// suggested for an unknown one: enough for a typo, a transposition or
// snake_case written for kebab-case.
const maxSuggestDistance = 2

// suggest returns the known key that the unknown key segs probably meant:
// the closest key of the same table within maxSuggestDistance edits, or
// else a key of exactly that name in another table, given in full (listen
// at the top level → server.listen). It returns "" if there is none.
func (d *decoder) suggest(segs []string) string {
	parent, name := keyString(segs[:len(segs)-1]), segs[len(segs)-1]
	best, bestDist := "", maxSuggestDistance+1
	for _, known := range d.names {
		p, n := splitKey(known)
		if p != parent {
			continue
		}
		if dist := levenshtein(name, n); dist < bestDist && dist < len(name) {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return best
	}
	for _, known := range d.names {
		if _, n := splitKey(known); n == name {
			return known
		}
	}
	return ""
}

// splitKey splits a dotted schema key into its table and its last segment.
func splitKey(key string) (table, name string) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", key
	}
	return key[:i], key[i+1:]
}

// levenshtein returns the edit distance between a and b in runes, or a
// number above maxSuggestDistance when their lengths alone differ by more
// (the text comes from the file and may be long).
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if diff := len(ra) - len(rb); diff > maxSuggestDistance || -diff > maxSuggestDistance {
		return maxSuggestDistance + 1
	}
	prev, cur := make([]int, len(rb)+1), make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

package discipline

import (
	"math"
	"slices"
)

// candidate is one source's estimate as selection sees it.
type candidate struct {
	src       int
	group     string
	theta     float64 // offset estimate, s
	nu        float64 // drift estimate, s/s
	varTheta  float64
	lo, hi    float64 // correctness interval
	truechime bool
	prefer    bool
}

// interval returns the correctness interval of an estimate: the true time
// lies within half the path's minimum delay of what any sample measured
// (the most an asymmetric path can shift it), plus the server's own root
// distance, plus three standard deviations of the estimate.
func interval(theta, varTheta, minDelay, rootDist float64) (lo, hi float64) {
	r := minDelay/2 + rootDist + 3*math.Sqrt(varTheta)
	return theta - r, theta + r
}

// selectTruechimers marks the candidates whose intervals share a point
// with those of a majority of all candidates (Marzullo's algorithm, as
// RFC 5905 §11.2.1 uses it): for f = 0, 1, ... while f < n/2, it looks
// for a point that at least n-f intervals contain; the candidates whose
// intervals contain it are the truechimers. It reports whether a
// majority was found; if not, no candidate is marked.
func selectTruechimers(cs []candidate) bool {
	point, ok := majorityPoint(cs)
	for i := range cs {
		cs[i].truechime = ok && cs[i].lo <= point && point <= cs[i].hi
	}
	return ok
}

// selectDiverse is selectTruechimers with each group of sources (one
// operator's network) casting one vote, so that an attacker who controls
// many sources of one network cannot outvote a few independent ones
// (THREATS D7): the majority point is found among one candidate per group,
// and every candidate whose interval contains that point is a truechimer.
// A group's candidate is its most precise member among those that agree
// with the majority of the group, so that one liar among a group's
// members does not speak for the group; a group whose members have no
// majority casts no vote. Candidates with no group are groups of their
// own.
func selectDiverse(cs []candidate) bool {
	var reps []candidate
	groups := map[string][]candidate{}
	var order []string
	for _, c := range cs {
		if c.group == "" {
			reps = append(reps, c)
			continue
		}
		if _, seen := groups[c.group]; !seen {
			order = append(order, c.group)
		}
		groups[c.group] = append(groups[c.group], c)
	}
	for _, g := range order {
		if rep, ok := groupVote(groups[g]); ok {
			reps = append(reps, rep)
		}
	}
	point, ok := majorityPoint(reps)
	for i := range cs {
		cs[i].truechime = ok && cs[i].lo <= point && point <= cs[i].hi
	}
	return ok
}

// groupVote returns the candidate that speaks for a group: its most
// precise member among those whose intervals contain the group's
// majority point; false if the group has no majority.
func groupVote(members []candidate) (candidate, bool) {
	point, ok := majorityPoint(members)
	if !ok {
		return candidate{}, false
	}
	var rep candidate
	found := false
	for _, c := range members {
		if c.lo <= point && point <= c.hi && (!found || c.varTheta < rep.varTheta) {
			rep, found = c, true
		}
	}
	return rep, found
}

// majorityPoint returns a point that the intervals of a majority of cs
// contain, as selectTruechimers describes, and whether there is one.
func majorityPoint(cs []candidate) (float64, bool) {
	n := len(cs)
	type edge struct {
		at   float64
		kind int // -1 a lower end, +1 an upper end
	}
	edges := make([]edge, 0, 2*n)
	for _, c := range cs {
		edges = append(edges, edge{c.lo, -1}, edge{c.hi, +1})
	}
	// Lower ends before upper ends at the same point: touching
	// intervals intersect.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return a.kind - b.kind
	})
	for f := 0; 2*f < n; f++ {
		need := n - f
		depth := 0
		for _, e := range edges {
			depth -= e.kind
			if e.kind == -1 && depth >= need {
				return e.at, true
			}
		}
	}
	return 0, false
}

package sim

import "container/heap"

// queue is a priority queue of events by time; events at the same time
// come out in the order they went in.
type queue struct {
	evs []qev
	seq uint64
}

type qev struct {
	event
	seq uint64
}

func (q *queue) Len() int { return len(q.evs) }
func (q *queue) Less(i, j int) bool {
	a, b := q.evs[i], q.evs[j]
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}
func (q *queue) Swap(i, j int) { q.evs[i], q.evs[j] = q.evs[j], q.evs[i] }
func (q *queue) Push(x any)    { q.evs = append(q.evs, x.(qev)) }
func (q *queue) Pop() any {
	e := q.evs[len(q.evs)-1]
	q.evs = q.evs[:len(q.evs)-1]
	return e
}

func (q *queue) push(e event) {
	q.seq++
	heap.Push(q, qev{e, q.seq})
}

func (q *queue) pop() event { return heap.Pop(q).(qev).event }

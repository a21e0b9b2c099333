package instrument

// classify decides how each defined function is instrumented. Functions
// that can recurse (on a cycle of the call graph, where an indirect call
// may reach any function whose address is taken) track call depth; small
// loop-free functions that cannot recurse are left alone.
func classify(m *module, infos []fnInfo, taken []bool, opts Options) []plan {
	n := len(infos)
	var takenList []int
	for f, t := range taken {
		if t {
			takenList = append(takenList, f)
		}
	}
	comp, compSize, order := sccs(n, infos, takenList)

	plans := make([]plan, n)
	for _, v := range order {
		fi := &infos[v]
		p := &plans[v]
		p.recursive = compSize[comp[v]] > 1
		for _, c := range fi.callees {
			if int(c) == v {
				p.recursive = true
			}
		}
		ft := m.types[m.funcTypes[v]]
		p.frame = int32(16 + 8*(uint64(len(ft.Params))+fi.nLocals+1+uint64(len(ft.Results))))
		if fi.hasLoop {
			p.class = classLocal
			continue
		}
		p.class = classEntry
		if fi.indirect || p.recursive || len(fi.splits) > 0 {
			continue
		}
		// Callees are in earlier components, so their plans are final.
		cost := fi.regions[0].base
		free := true
		for _, c := range fi.callees {
			if plans[c].class != classFree {
				free = false
				break
			}
			cost += plans[c].inclusive
		}
		if free && cost <= freeCost {
			p.class = classFree
			p.inclusive = cost
		}
	}
	for v := range plans {
		p := &plans[v]
		if p.class == classFree {
			continue
		}
		regs := infos[v].regions
		p.weights = make([]int32, len(regs))
		// Regions long enough to be cut are charged at cutUnitsPerTick.
		var inCut map[int]bool
		for _, i := range infos[v].splits {
			if inCut == nil {
				inCut = map[int]bool{}
			}
			inCut[regs[i].head] = true
		}
		for i, r := range regs {
			cost := r.base
			for _, c := range r.calls {
				if plans[c].class == classFree {
					cost += plans[c].inclusive
				} else {
					cost++
				}
			}
			w := 1 + cost/unitsPerTick
			if inCut[r.head] {
				w = 1 + cost/cutUnitsPerTick
			}
			if w > maxWeight {
				w = maxWeight
			}
			p.weights[i] = int32(w)
		}
		if len(infos[v].splits) == 0 {
			continue
		}
		// Cumulative charges along each cut region's pieces (in index
		// order: a region's pieces come after it, in code order).
		p.cum = make([]int32, len(regs))
		p.cut = make([]bool, len(regs))
		run := make(map[int]int64, 4) // by first piece: charged so far
		for i, r := range regs {
			w := int64(p.weights[i])
			if r.split < 0 {
				p.cum[i] = int32(w)
				run[i] = w
				continue
			}
			p.cut[r.head] = true
			if c := run[r.head] + w; c <= maxCum {
				p.cum[i] = int32(c)
				run[r.head] = c
			} else {
				// Past maxCum the count starts again at this piece
				// (charged as if nothing of the region were).
				p.cum[i] = int32(-w)
				run[r.head] = w
			}
		}
	}
	return plans
}

// sccs finds the strongly connected components of the call graph over n
// defined functions plus a hub node (index n) standing for every indirect
// call: callers of call_indirect point to it, it points to every function
// in taken. It returns each node's component, the sizes of the
// components, and the functions in the order their components complete,
// which puts callees before callers. Iterative Tarjan: bodies can nest
// calls deeper than a goroutine stack should recurse.
func sccs(n int, infos []fnInfo, taken []int) (comp []int, size []int, order []int) {
	hub := n
	succ := func(v, i int) (int, bool) {
		if v == hub {
			if i < len(taken) {
				return taken[i], true
			}
			return 0, false
		}
		cs := infos[v].callees
		if i < len(cs) {
			return int(cs[i]), true
		}
		if i == len(cs) && infos[v].indirect {
			return hub, true
		}
		return 0, false
	}
	index := make([]int, n+1) // 0: not visited; else visit order + 1
	low := make([]int, n+1)
	onStack := make([]bool, n+1)
	comp = make([]int, n+1)
	var stack []int
	type frame struct{ v, next int }
	var calls []frame
	counter := 0
	for root := 0; root <= n; root++ {
		if index[root] != 0 {
			continue
		}
		calls = append(calls, frame{v: root})
		counter++
		index[root], low[root] = counter, counter
		stack = append(stack, root)
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			w, ok := succ(f.v, f.next)
			if ok {
				f.next++
				if index[w] == 0 {
					counter++
					index[w], low[w] = counter, counter
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{v: w})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				if u := calls[len(calls)-1].v; low[v] < low[u] {
					low[u] = low[v]
				}
			}
			if low[v] != index[v] {
				continue
			}
			id := len(size)
			count := 0
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = id
				count++
				if w != hub {
					order = append(order, w)
				}
				if w == v {
					break
				}
			}
			size = append(size, count)
		}
	}
	return comp, size, order
}

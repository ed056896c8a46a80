#!/usr/bin/env python3
"""Aggregates .cpuprofile files (node --cpu-prof): self time per function, top entries.
Usage: python3 bench/analyze-profile.py [--window FROM_END_S TO_END_S] FILE.cpuprofile [...]
--window 21 1 keeps only samples between 21 s and 1 s before the profile's end (the idle window
of --profile-idle, without start-up and shutdown)."""
import collections, json, sys

def main(args):
    window = None
    if args[:1] == ['--window']:
        window = (float(args[1]) * 1e6, float(args[2]) * 1e6)
        args = args[3:]
    files = args
    by_fn = collections.Counter()
    total = 0.0
    for f in files:
        p = json.load(open(f))
        nodes = {n['id']: n for n in p['nodes']}
        deltas = p.get('timeDeltas', [])
        samples = p.get('samples', [])
        ts, t = [], p['startTime']
        for dt in deltas:
            t += dt
            ts.append(t)
        end = p['endTime']
        for sid, dt, at in zip(samples, deltas, ts):
            if window and not (end - window[0] <= at <= end - window[1]):
                continue
            n = nodes[sid]
            cf = n['callFrame']
            name = cf['functionName'] or '(anonymous)'
            url = cf['url'].rsplit('/', 1)[-1]
            key = f"{name} {url}:{cf['lineNumber'] + 1}" if url else name
            by_fn[key] += dt / 1000.0
            total += dt / 1000.0
    print(f"{len(files)} profile(s), {total/1000:.1f} s sampled")
    for k, v in by_fn.most_common(40):
        print(f"{v/total*100:6.2f}%  {v/1000:7.2f} s  {k}")

if __name__ == '__main__':
    main(sys.argv[1:])

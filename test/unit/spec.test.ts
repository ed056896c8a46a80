// The spec loader: YAML 1.2, strict, every error located (case 09: duplicate keys, tabs, `no`).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { loadSpecFile, loadSpecText } from '../../src/spec/load.js'
import { dependencyLevels } from '../../src/spec/graph.js'
import { InputError } from '../../src/util/errors.js'

function problems (text: string): string[] {
  try {
    loadSpecText(text, 'cluster.yaml', '/tmp')
  } catch (err) {
    if (err instanceof InputError) return err.problems.map(p => `${p.line ?? '?'}:${p.field ?? ''}: ${p.message}`)
    throw err
  }
  return []
}

const svc = (name: string, extra = '') => `  ${name}:\n    command: [node, ${name}.mjs]\n    port: ${8000 + name.length}\n${extra}`

describe('cluster spec', () => {
  it('a template file that is not there is an error at load (validate, --dry-run, launch), not a FAIL of every instance later', () => {
    const tpl = (source: string) => `services:\n  app:\n    command: [node, app.mjs]\n    templates:\n      - { source: ${source}, dest: x.json, format: json }\n`
    expect(problems(tpl('missing.eta'))).toEqual(['5:services.app.templates.0.source: no template file /tmp/missing.eta (paths are relative to the spec\'s directory)'])
    expect(problems(tpl('.'))).toEqual(['5:services.app.templates.0.source: /tmp is not a file'])
    const lb = 'services:\n  www:\n    command: [x]\n    port: 8000\n  lb:\n    depends_on: [www]\n    port: 8080\n    balancer:\n      kind: haproxy\n      routes: [{ path: /, service: www }]\n      template: { source: nope.cfg }\n'
    expect(problems(lb)).toEqual([expect.stringMatching(/services\.lb\.balancer\.template\.source: no template file \/tmp\/nope\.cfg/)])
  })

  it('the example spec is valid and its levels are db and www, then app, then lb', () => {
    const spec = loadSpecFile('examples/webcluster/cluster.yaml')
    expect(dependencyLevels(spec.services)).toEqual([['db', 'www'], ['app'], ['lb']])
    expect(spec.services.www!.max).toBe(3)
  })

  it('a service defined twice is rejected with the key and both lines (case 09)', () => {
    const text = 'services:\n  www:\n    command: [node, www.mjs]\n    max: 3\n  www:\n    command: [node, www.mjs]\n    max: 1\n'
    const p = problems(text)
    expect(p).toHaveLength(1)
    expect(p[0]).toMatch(/^5:/)
    expect(p[0]).toContain('duplicate key "www" (first defined on line 2)')
  })

  it('a file that is not YAML (the README given by mistake) gives a few short lines, not the file quoted back', () => {
    const prose = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const p = problems(prose)
    expect(p.length).toBeGreaterThan(0)
    expect(p.length).toBeLessThanOrEqual(6)
    for (const line of p) expect(line.length).toBeLessThan(200)
    expect(p.at(-1)).toMatch(/more YAML errors?: is this a YAML file\?/)
  })

  it('a tab in the indentation is rejected with line and column (case 09)', () => {
    const err = (() => { try { loadSpecText('services:\n\twww:\n    command: [x]\n', 'c.yaml', '/') } catch (e) { return e as InputError } })()
    expect(err).toBeInstanceOf(InputError)
    expect(err!.problems[0]).toMatchObject({ file: 'c.yaml', line: 2, column: 1 })
    expect(err!.message).toContain('tab')
  })

  it('YAML 1.2: an unquoted `no` stays the string "no" (case 09)', () => {
    const spec = loadSpecText('services:\n  www:\n    command: [node, www.mjs]\n    env: { ENABLED: no, LEVEL: off }\n', 'c.yaml', '/')
    expect(spec.services.www!.env).toEqual({ ENABLED: 'no', LEVEL: 'off' })
  })

  it('unknown fields are rejected with a suggestion and a line', () => {
    const p = problems(`services:\n${svc('www', '    depends_ob: [db]\n')}`)
    expect(p).toEqual(['5:services.www.depends_ob: unknown field "depends_ob"; did you mean "depends_on"?'])
  })

  it('an unknown field is located at its key, not its value', () => {
    const err = (() => { try { loadSpecText('clustr:\n  min_nodes: 3\nservices:\n  www:\n    command: [a]\n    helth: { tcp: {} }\n', 'c.yaml', '/') } catch (e) { return e as InputError } })()!
    expect(err.problems.map(p => [p.field, p.line, p.column])).toEqual([['clustr', 1, 1], ['services.www.helth', 6, 5]])
    expect(err.message).toContain('did you mean "cluster"?')
  })

  it('a service named like a member of every object ("constructor") is refused', () => {
    expect(problems('services:\n  constructor:\n    command: [a]\n').join()).toContain('reserved')
  })

  it('a YAML alias bomb is an input error, not a crash', () => {
    const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nservices: {}\n'
    expect(() => loadSpecText(bomb, 'bomb.yaml', '/')).toThrow(InputError)
  })

  it('names unknown dependencies, cycles, min > max, and balancer routes outside depends_on', () => {
    const text = `services:\n${svc('a', '    depends_on: [b, nope]\n    min: 3\n    max: 2\n')}${svc('b', '    depends_on: [a]\n')}  lb:\n    port: 80\n    balancer:\n      routes:\n        - { path: /, service: a }\n`
    const p = problems(text).join('\n')
    expect(p).toContain('services.a.depends_on.1: unknown service "nope"')
    expect(p).toContain('dependency cycle: a -> b -> a')
    expect(p).toContain('services.a.min: min (3) is above max (2)')
    expect(p).toContain('the balancer routes to "a", so list it in depends_on')
  })

  it('commands run without a shell: a command as one string is refused unless the service says shell: true', () => {
    const refused = problems('services:\n  a:\n    command: "node a.mjs > log"\n    health: { command: "test -f x" }\n    reload: { command: "kill -HUP 1" }\n')
    expect(refused).toHaveLength(3)
    for (const p of refused) expect(p).toMatch(/needs a shell: add `shell: true`/)
    expect(refused.map(p => p.split(':')[1])).toEqual(['services.a.command', 'services.a.health.command', 'services.a.reload.command'])
    const spec = loadSpecText('services:\n  a:\n    shell: true\n    command: "exec node a.mjs > log"\n    health: { command: "test -f x" }\n', 'cluster.yaml', '/tmp')
    expect(spec.services.a!.command).toEqual(['/bin/sh', '-c', 'exec node a.mjs > log'])
    expect(spec.services.a!.health!.command).toEqual(['/bin/sh', '-c', 'test -f x'])
    // A list is never given to a shell, shell or not.
    const list = loadSpecText('services:\n  a:\n    shell: true\n    command: [echo, "$(id)", ";", rm]\n', 'cluster.yaml', '/tmp')
    expect(list.services.a!.command).toEqual(['echo', '$(id)', ';', 'rm'])
  })

  it('a service with a volume runs as a single instance', () => {
    expect(problems(`services:\n${svc('db', '    volume: { name: db-data }\n    max: 2\n')}`).join()).toContain('single instance')
  })
})

// Config templates: golden files for every format, and hostile values that must not escape their
// place (no config injection through an id, an address or a name).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { renderTemplate, TemplateError, type TemplateContext } from '../../src/relations/template.js'
import type { TemplateFormat } from '../../src/spec/schema.js'

const FIX = new URL('../fixtures/templates/', import.meta.url).pathname
const GOLD = new URL('./golden/templates/', import.meta.url).pathname

const normal: TemplateContext = {
  cluster: 'demo',
  instance: { id: 'app-4', service: 'app', node: 'vm-2', ip: '10.0.0.3', port: 8081 },
  deps: { db: [{ id: 'db-1', node: 'vm-1', ip: '10.0.0.2', port: 6380, address: '10.0.0.2:6380' }, { id: 'db-7', node: 'vm-3', ip: 'fd00::7', port: 6380, address: '[fd00::7]:6380' }] }
}
const EVIL_ID = 'x"y\'z\\ $(touch /tmp/pwned) `id` </db><evil/> ; #'
const EVIL_IP = '10.0.0.9\nserver 6.6.6.6:80;'
const hostile: TemplateContext = {
  cluster: 'demo',
  instance: { id: EVIL_ID, service: 'app', node: 'vm-2', ip: '10.0.0.3', port: 8081 },
  deps: { db: [{ id: EVIL_ID, node: 'vm-1', ip: EVIL_IP, port: 6380, address: `${EVIL_IP}:6380` }] }
}

const cases: Array<[string, TemplateFormat]> = [
  ['app.json', 'json'], ['app.yaml', 'yaml'], ['app.env', 'shell'], ['app.ini', 'ini'], ['app.xml', 'xml'], ['upstream.conf', 'conf'], ['hosts.txt', 'text']
]

function render (name: string, format: TemplateFormat, ctx: TemplateContext): string {
  return renderTemplate(name, readFileSync(join(FIX, `${name}.eta`), 'utf8'), format, ctx)
}

function golden (file: string, actual: string): void {
  const path = join(GOLD, file)
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) writeFileSync(path, actual)
  expect(actual).toBe(readFileSync(path, 'utf8'))
}

describe('config templates', () => {
  for (const [name, format] of cases) {
    it(`${name} (${format}) renders as its golden file`, () => {
      golden(name, render(name, format, normal))
    })
  }

  it('json and yaml: hostile values round-trip exactly, as strings', () => {
    const json = JSON.parse(render('app.json', 'json', hostile)) as { instance: string, db: Array<{ id: string, address: string }> }
    expect(json.instance).toBe(EVIL_ID)
    expect(json.db).toEqual([{ id: EVIL_ID, address: `${EVIL_IP}:6380` }])
    const yaml = parseYaml(render('app.yaml', 'yaml', hostile)) as { instance: string, db: Array<{ id: string, address: string }> }
    expect(yaml.instance).toBe(EVIL_ID)
    expect(yaml.db[0]).toEqual({ id: EVIL_ID, address: `${EVIL_IP}:6380` })
    golden('hostile.app.json', render('app.json', 'json', hostile))
  })

  it('shell: a sourced file gives back the hostile value and runs nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tpl-'))
    const file = join(dir, 'app.env')
    writeFileSync(file, render('app.env', 'shell', hostile))
    const marker = join(dir, 'pwned')
    const out = execFileSync('/bin/sh', ['-c', `. "$1"; printf '%s' "$INSTANCE"`, 'sh', file], { cwd: dir, encoding: 'utf8' })
    expect(out).toBe(EVIL_ID)
    expect(existsSync(marker) || existsSync('/tmp/pwned-by-wakame-test')).toBe(false)
    golden('hostile.app.env', readFileSync(file, 'utf8'))
  })

  it('xml: hostile values become text, never markup', () => {
    const out = render('app.xml', 'xml', hostile)
    expect(out).not.toContain('<evil/>')
    expect(out.match(/<db /g)).toHaveLength(1)
    golden('hostile.app.xml', out)
  })

  it('ini, conf and text refuse a value that could add a line or end a directive', () => {
    expect(() => render('app.ini', 'ini', hostile)).toThrow(TemplateError)
    expect(() => render('upstream.conf', 'conf', hostile)).toThrow(/one token/)
    expect(() => render('hosts.txt', 'text', hostile)).toThrow(/control character/)
  })

  it('a broken template is a TemplateError naming it', () => {
    expect(() => renderTemplate('bad.eta', '<%= it.nope.deeper %>', 'text', normal)).toThrow(/^bad\.eta: /)
  })
})

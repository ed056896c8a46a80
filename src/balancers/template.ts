// A user's own config template for a balancer kind (`balancer.template`), rendered with Eta from the
// same model as the builtin renderers. `<%= value %>` is escaped as one config token (the `conf`
// format of relations' templates), so a hostile name or address cannot add a directive.
// Pure: model and template text in, config text out.
import { Eta } from 'eta/core'
import { ESCAPERS, TemplateError } from '../relations/template.js'
import { CONFIG_HEADER, HEALTH_PATH, type BalancerModel } from './model.js'

/** What a template sees as `it`. */
export interface BalancerTemplateContext extends BalancerModel {
  /** The template must answer this path with 200 (the lb's health check)... */
  healthPath: string
  /** ...and this header set to `configId`, so a reload can be confirmed as live. */
  configHeader: string
  /** Extra, per kind (apache: `modulesDir`, `runAs`). */
  options: Record<string, unknown>
}

const eta = new Eta({ autoEscape: true, escapeFunction: ESCAPERS.conf, autoTrim: false, useWith: false, varName: 'it', cache: false })
const compiled = new Map<string, ReturnType<Eta['compile']>>()

export function renderBalancerTemplate (name: string, text: string, model: BalancerModel, options: Record<string, unknown> = {}): string {
  const ctx: BalancerTemplateContext = { ...model, healthPath: HEALTH_PATH, configHeader: CONFIG_HEADER, options }
  try {
    let fn = compiled.get(text)
    if (!fn) {
      fn = eta.compile(text)
      if (compiled.size > 64) compiled.clear()
      compiled.set(text, fn)
    }
    return fn.call(eta, ctx)
  } catch (err) {
    throw new TemplateError(`${name}: ${(err as Error).message.split('\n')[0]}`)
  }
}

// Apache httpd (mod_proxy_balancer) for real on 127.0.0.1 with real backends: the shared live suite
// (every change is a graceful restart, confirmed by a new child generation serving the new config
// id). Keep-alive errors through reloads are measured and printed. Skipped when apache2 is missing.
import { liveSuite } from './balancer-live-suite.js'

liveSuite('apache', { trials: 5 })

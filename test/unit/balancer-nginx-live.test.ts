// nginx for real on 127.0.0.1 with real backends: the shared live suite (every change is a reload:
// SIGHUP, confirmed by a new worker generation serving the new config id). Keep-alive errors through
// reloads are measured and printed: old workers close idle keep-alive connections, and a client that
// sends on one at that moment sees it closed. Skipped when nginx is missing.
import { liveSuite } from './balancer-live-suite.js'

liveSuite('nginx', { trials: 5 })

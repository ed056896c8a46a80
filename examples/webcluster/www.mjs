// www: serves the static files in ./www (next to this script, wherever the daemon starts it from).
//   GET /health → 200; GET|HEAD /path → the file, `/` and directories → index.html.
// Every answer carries `x-wakame-instance`, so you can see which instance the balancer picked.
import { createReadStream, statSync } from 'node:fs'
import { dirname, extname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sendText, serve } from './common.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), 'www')
const instanceHeader = { 'x-wakame-instance': process.env.WAKAME_INSTANCE ?? '' }

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml'
}

/**
 * The file for a URL path, or null if the path leaves the root. Checked after decoding, so `%2e%2e`
 * and `..%2f` are caught too; the root itself is allowed (it maps to index.html).
 */
function fileFor (urlPath) {
  let decoded
  try { decoded = decodeURIComponent(urlPath) } catch { return null }
  if (decoded.includes('\0')) return null
  const file = resolve(root, '.' + decoded)
  return file === root || file.startsWith(root + sep) ? file : null
}

serve((req, res) => {
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/health') return sendText(res, 200, 'ok\n', instanceHeader)
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'use GET or HEAD\n', { ...instanceHeader, allow: 'GET, HEAD' })

  let file = fileFor(path)
  if (file === null) return sendText(res, 403, 'forbidden: path outside the site\n', instanceHeader)
  let st
  try {
    st = statSync(file)
    if (st.isDirectory()) { file = join(file, 'index.html'); st = statSync(file) }
  } catch {
    return sendText(res, 404, `not found: ${path}\n`, instanceHeader)
  }
  if (!st.isFile()) return sendText(res, 404, `not found: ${path}\n`, instanceHeader)

  res.writeHead(200, {
    ...instanceHeader,
    'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': st.size,
    'cache-control': 'no-cache'
  })
  if (req.method === 'HEAD') return res.end()
  const stream = createReadStream(file)
  // A file that vanished or failed mid-way cannot be reported with a status any more: cut the connection.
  stream.on('error', () => res.destroy())
  stream.pipe(res)
})

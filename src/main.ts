// Entry point of the single bundle: daemon and CLI in one file (see build.mjs).
import './polyfill.js'
import { runCli } from './cli/index.js'

void runCli(process.argv)

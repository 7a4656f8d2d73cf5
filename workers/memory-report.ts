/**
 * A worker thread's report of its own memory to the host (protocol.ts,
 * MemoryReport): V8 attributes ArrayBuffers, Buffers, typed arrays, WebAssembly
 * memories and external strings to the isolate that made them, and only the
 * isolate itself can read that figure in Node 20 (Worker#getHeapStatistics
 * arrives in 22.16). The host decides what the figures mean; a worker that
 * stops reporting, because its library blocks the loop, is watched from the
 * host's side instead.
 */
import { getHeapStatistics } from 'node:v8';
import { MEMORY_REPORT_INTERVAL_MS, type MemoryReport } from '../src/hooks/protocol.js';

export interface MemoryReportPort {
  postMessage(message: MemoryReport): void;
}

/** Reports at once and then every MEMORY_REPORT_INTERVAL_MS until stopped. */
export function startMemoryReports(port: MemoryReportPort): () => void {
  const report = (): void => {
    // ~2 µs of CPU; process.memoryUsage() would also read the process's rss from /proc.
    const heap = getHeapStatistics();
    port.postMessage({ t: 'memory', heapBytes: heap.total_heap_size, externalBytes: heap.external_memory });
  };
  report();
  // Unref'd: the reports must never be what keeps a worker alive.
  const timer = setInterval(report, MEMORY_REPORT_INTERVAL_MS).unref();
  return () => clearInterval(timer);
}

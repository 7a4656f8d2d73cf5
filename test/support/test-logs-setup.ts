/**
 * vitest setup (vitest.config.ts setupFiles): the in-process Logger writes to a test log
 * instead of stderr, and a failing test gets every test log's lines from its run printed
 * after it. Tests that install a sink of their own keep it.
 */
import { beforeEach } from 'vitest';
import { formatRecord, Logger, stderrSink, type LogSink } from '../../src/log/logger.js';
import { logsOfThisTest, markTestStart, TestLog } from './test-logs.js';

const engine = new TestLog('in-process logger');
const toEngineLog: LogSink = (record) => engine.write(formatRecord(record));
Logger.setSink(toEngineLog);

beforeEach(({ onTestFailed }) => {
  // A test file that restored stderrSink when it finished gets the file back.
  if (Logger.getSink() === stderrSink) Logger.setSink(toEngineLog);
  markTestStart();
  onTestFailed(() => {
    const text = logsOfThisTest();
    if (text) console.error(`Logs written during this test:\n${text}`);
  });
});

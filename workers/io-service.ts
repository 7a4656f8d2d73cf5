/**
 * The server's IOService as a library sees it (`io_context`): a comlink proxy of
 * the main loop's IOService. Callbacks are proxied, so when the main loop fires
 * them they run here, in the library's thread. comlink never rejects a call by
 * itself, so each call carries a deadline.
 */
import * as Comlink from 'comlink';
import type { MessagePort } from 'node:worker_threads';
import { nodeEndpoint, type IOCallback, type IOServiceRemote } from '../src/hooks/protocol.js';
import type { IOService as IOServiceApi } from './hooks-api.js';

export class IOServiceClient implements IOServiceApi {
  private readonly remote: Comlink.Remote<IOServiceRemote>;

  constructor(
    port: MessagePort,
    private readonly callTimeoutMs: number,
  ) {
    this.remote = Comlink.wrap<IOServiceRemote>(nodeEndpoint(port));
    // The port must not keep the worker alive on its own.
    port.unref();
  }

  post(callback: IOCallback): Promise<number> {
    return this.withDeadline('post', this.remote.post(Comlink.proxy(checked(callback))));
  }

  setTimeout(callback: IOCallback, ms: number): Promise<number> {
    return this.withDeadline('setTimeout', this.remote.setTimeout(Comlink.proxy(checked(callback)), ms));
  }

  setInterval(callback: IOCallback, ms: number): Promise<number> {
    return this.withDeadline('setInterval', this.remote.setInterval(Comlink.proxy(checked(callback)), ms));
  }

  cancel(id: number): Promise<boolean> {
    return this.withDeadline('cancel', this.remote.cancel(id));
  }

  private withDeadline<T>(what: string, call: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`IOService.${what} got no answer from the server in ${this.callTimeoutMs} ms`)),
        this.callTimeoutMs,
      );
    });
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }
}

function checked(callback: IOCallback): IOCallback {
  if (typeof callback !== 'function') throw new TypeError('IOService callback must be a function');
  return callback;
}

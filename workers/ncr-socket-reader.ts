/**
 * The NCR socket read off the main thread (`d2box-ncr-reader-thread`): this
 * thread's loop does nothing but empty the socket, so a burst is taken out of
 * the kernel's buffer as fast as it arrives, whatever the main loop is busy
 * with. Datagrams go to the main thread as they are, in one message per turn
 * of this loop; decoding, counting and queuing stay on the main thread
 * (src/ncr/ncr-listener.ts), so both ways of reading account alike.
 *
 * Messages: see NcrReaderMessage in src/hooks/protocol.ts.
 */
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import type { NcrReaderMessage, NcrReaderSetup } from '../src/hooks/protocol.js';

const setup = workerData as NcrReaderSetup;
const port = parentPort!;
const send = (m: NcrReaderMessage): void => port.postMessage(m);

const sock = dgram.createSocket({ type: setup.family === 6 ? 'udp6' : 'udp4', ipv6Only: setup.family === 6 });
let datagrams: Uint8Array[] = [];
let from: [string, number][] = [];
let scheduled = false;

sock.once('error', (err: NodeJS.ErrnoException) => send({ type: 'bind-error', code: err.code, message: err.message }));
sock.once('listening', () => {
  sock.removeAllListeners('error');
  sock.on('error', (err) => send({ type: 'socket-error', message: err.message }));
  send({ type: 'listening', port: sock.address().port, ...(setup.receiveBufferBytes !== undefined ? { recvBuffer: setRecvBuffer(setup.receiveBufferBytes) } : {}) });
});
sock.on('message', (msg, rinfo) => {
  datagrams.push(msg);
  from.push([rinfo.address, rinfo.port]);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const batch: NcrReaderMessage = { type: 'datagrams', datagrams, from };
    datagrams = [];
    from = [];
    send(batch);
  });
});
port.on('message', (m: { type: 'recv-buffer'; bytes: number } | { type: 'close' }) => {
  if (m.type === 'close') {
    sock.close(() => port.close());
    return;
  }
  send({ type: 'recv-buffer', ...setRecvBuffer(m.bytes) });
});

function setRecvBuffer(bytes: number): { granted?: number; error?: string } {
  try {
    sock.setRecvBufferSize(bytes);
    return { granted: sock.getRecvBufferSize() };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
sock.bind({ address: setup.address, port: setup.port, exclusive: true });

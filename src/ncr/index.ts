export * from './name-change-request.js';
export { decodeNcr, encodeNcr, frameJson, RECV_BUF_MAX, MAX_JSON_LENGTH } from './wire.js';
export { NcrListener, NcrListenerError, type NcrListenerOptions, type NcrListenerCounters } from './ncr-listener.js';
export { NcrSender, type NcrSenderOptions } from './ncr-sender.js';
export { parseIpAddress, formatIPv6 } from '../dns/ip-address.js';
export { parseKeaJson, KeaReal, type KeaValue } from './kea-json.js';

/** The DNS layer of d2box: names, messages, TSIG, RFC 2136 updates, the UDP client. */
export * from './codes.js';
export * from './errors.js';
export * from './name.js';
export * from './rdata.js';
export * from './message.js';
export * from './tsig.js';
export * from './update-message.js';
export * from './dns-client.js';

/**
 * A Kerberos encryption type (RFC 3961 §3): the profile every enctype fills in,
 * and the registry the rest of the library asks by number. The implementations
 * (RFC 3962's aes*-cts-hmac-sha1-96, optionally RFC 8009's aes*-cts-hmac-sha2)
 * live beside this file, on node:crypto only.
 */
export interface Enctype {
  /** The etype number: 17 aes128-cts-hmac-sha1-96, 18 aes256-cts-hmac-sha1-96 (19, 20 for RFC 8009). */
  readonly etype: number;
  readonly name: string;
  /** Octets of a key of this type (16 or 32). */
  readonly keyBytes: number;
  /** The keyed checksum type paired with it (RFC 3962: 15 for etype 17, 16 for etype 18). */
  readonly checksumType: number;
  /** Octets of that checksum (12 for the sha1-96 types). */
  readonly checksumBytes: number;
  /** RFC 3961 string-to-key; `params` is the s2kparams (RFC 3962: iteration count, 4 octets big-endian). */
  stringToKey(password: Uint8Array | string, salt: Uint8Array | string, params?: Uint8Array): Buffer;
  /** RFC 3961 random-to-key (identity for AES). */
  randomToKey(bytes: Uint8Array): Buffer;
  /** Encrypts with key usage `usage`; `confounder` only for test vectors (else random). */
  encrypt(key: Uint8Array, usage: number, plaintext: Uint8Array, confounder?: Uint8Array): Buffer;
  /** Decrypts and checks integrity; throws KrbIntegrityError when the HMAC does not match. */
  decrypt(key: Uint8Array, usage: number, ciphertext: Uint8Array): Buffer;
  /** The keyed checksum (get_mic) over `data` with key usage `usage`. */
  checksum(key: Uint8Array, usage: number, data: Uint8Array): Buffer;
}

export class KrbIntegrityError extends Error {}

export class UnsupportedEnctypeError extends Error {
  constructor(readonly etype: number) {
    super(`Kerberos encryption type ${etype} is not supported (only aes256-cts-hmac-sha1-96 and aes128-cts-hmac-sha1-96${''})`);
  }
}

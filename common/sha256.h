/* sha256.h: SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for signing webhook deliveries. */
#ifndef JOBQ_COMMON_SHA256_H
#define JOBQ_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed so far */
    uint8_t buf[64];    /* the block being filled */
    size_t nbuf;
} sha256_ctx;

/** sha256_init, sha256_update, sha256_final: hashes data given in any number of pieces. */
void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[32]);

/** hmac_sha256: HMAC-SHA256 of the concatenation of the n pieces parts[i] (lens[i] bytes) under
 *  key (keylen bytes). */
void hmac_sha256(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                 size_t n, uint8_t out[32]);

/** hex32: the 64 lowercase hex digits of a 32-byte digest, NUL-terminated. */
void hex32(const uint8_t d[32], char out[65]);

#endif

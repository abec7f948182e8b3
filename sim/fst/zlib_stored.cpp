// zlib stream (RFC 1950) holding deflate "stored" blocks (RFC 1951 3.2.4):
// 2-byte header, blocks of at most 65535 bytes each behind a 5-byte header
// (BFINAL/BTYPE=00, LEN, NLEN), then the Adler-32 of the data, big-endian.
#include "zlib.h"
#include <string.h>

extern "C" uLong compressBound(uLong sourceLen) {
    return sourceLen + 5 * (sourceLen / 65535 + 1) + 6;
}

extern "C" int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level) {
    (void)level;
    if (*destLen < compressBound(sourceLen)) return Z_BUF_ERROR;
    uLong out = 0;
    dest[out++] = 0x78;
    dest[out++] = 0x01;
    uLong pos = 0;
    do {
        uLong n = sourceLen - pos > 65535 ? 65535 : sourceLen - pos;
        dest[out++] = (pos + n == sourceLen) ? 1 : 0;
        dest[out++] = (Bytef)(n & 0xFF);
        dest[out++] = (Bytef)(n >> 8);
        dest[out++] = (Bytef)(~n & 0xFF);
        dest[out++] = (Bytef)((~n >> 8) & 0xFF);
        memcpy(dest + out, source + pos, n);
        out += n;
        pos += n;
    } while (pos < sourceLen);
    unsigned long a = 1, b = 0;
    for (uLong i = 0; i < sourceLen; i++) {
        a = (a + source[i]) % 65521;
        b = (b + a) % 65521;
    }
    unsigned long adler = (b << 16) | a;
    dest[out++] = (Bytef)(adler >> 24);
    dest[out++] = (Bytef)(adler >> 16);
    dest[out++] = (Bytef)(adler >> 8);
    dest[out++] = (Bytef)adler;
    *destLen = out;
    return Z_OK;
}

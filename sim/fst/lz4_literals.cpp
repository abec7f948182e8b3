// LZ4 block format: a sequence is a token (literal length in the high nibble,
// 15 meaning "more length bytes follow", each 255 adding 255 until a smaller
// one), the literals, then a match; the last sequence has no match. A block of
// one literal-only sequence is therefore valid for any input.
#include "lz4.h"
#include <string.h>

extern "C" int LZ4_compressBound(int inputSize) {
    return inputSize < 0 ? 0 : inputSize + inputSize / 255 + 16;
}

extern "C" int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity) {
    if (srcSize < 0 || dstCapacity < LZ4_compressBound(srcSize)) return 0;
    int out = 0;
    if (srcSize < 15) {
        dst[out++] = (char)(srcSize << 4);
    } else {
        dst[out++] = (char)0xF0;
        int rest = srcSize - 15;
        while (rest >= 255) {
            dst[out++] = (char)255;
            rest -= 255;
        }
        dst[out++] = (char)rest;
    }
    memcpy(dst + out, src, (size_t)srcSize);
    return out + srcSize;
}

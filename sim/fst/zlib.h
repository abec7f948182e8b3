/* Minimal zlib API for Verilator's FST writer (fstcpp), so that FST tracing
 * builds without zlib1g-dev. compress2() writes a valid zlib stream of stored
 * (uncompressed) deflate blocks; the writer keeps whichever of the compressed
 * and raw forms is smaller, so it stores raw data. */
#ifndef PTLNIC_ZLIB_H
#define PTLNIC_ZLIB_H
#ifdef __cplusplus
extern "C" {
#endif
typedef unsigned char Bytef;
typedef unsigned long uLong;
typedef uLong uLongf;
#define Z_OK 0
#define Z_BUF_ERROR (-5)
uLong compressBound(uLong sourceLen);
int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level);
#ifdef __cplusplus
}
#endif
#endif

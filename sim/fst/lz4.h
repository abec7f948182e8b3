/* Minimal LZ4 block API for Verilator's FST writer (fstcpp), so that FST
 * tracing builds without liblz4-dev. The encoder emits valid LZ4 blocks made
 * of literals only: no compression, which FST readers decode like any block. */
#ifndef PTLNIC_LZ4_H
#define PTLNIC_LZ4_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif

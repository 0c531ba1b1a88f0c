#pragma once
// The dense linear algebra of GPTQ (internal to core/quant/gptq.cpp), compiled once per instruction set
// (gptq_kernels_{generic,avx2,avx512}.cpp include gptq_kernels.inc with Eigen renamed into a namespace of
// their own, so the three copies of Eigen's templates never meet at link time). kernels() picks the best
// one the CPU runs. All matrices are row-major float; every function is single-threaded unless it takes
// a thread count (then it runs on the ThreadPool).

#include <cstdint>

namespace qs::gptq_detail {

struct Kernels {
    const char* name;
    // u (n x n, upper triangular, lower part zero) with u^T u = h^-1 for a symmetric positive definite h.
    // False when h is not positive definite.
    bool (*inverseUpperCholesky)(const float* h, int n, float* u, unsigned threads);
    // c (m x n) -= a (m x k) * b (k x n); ld* are row strides.
    void (*gemmSub)(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int m,
                    int k, int n);
    // sum over the m rows d of d h d^T, for d (m x n, stride ldd) and h (n x n).
    double (*quadraticSum)(const float* d, int64_t ldd, int m, int n, const float* h);
    // h (n x n, column-major, lower triangle) = scale * h + alpha * x^T x for x (rows x n, row-major).
    void (*accumulate)(float* h, int n, const float* x, int64_t rows, float scale, float alpha);
    // GPTQ's column loop inside one block of `count` columns of w (rows x count, stride ldw): for i in
    // [0, count), quantize(ctx, i) quantizes column i and writes its scaled error to column i of err
    // (stride lde); then w[:, i+1:count] -= err[:, i] * u[i, i+1:count] (u: the block's rows of U, stride ldu,
    // column 0 = the block's first column). Products and differences are rounded separately (no FMA), as
    // in the original.
    void (*blockSweep)(float* w, int64_t ldw, const float* err, int64_t lde, const float* u, int64_t ldu, int rows,
                       int count, void (*quantize)(void* ctx, int column), void* ctx);
};

const Kernels& kernels();
// Tests: use `set` instead of the automatic choice (nullptr restores it). Not thread-safe against running work.
void overrideKernels(const Kernels* set);

// One set per instruction set (defined in gptq_kernels_<isa>.cpp); only call one the CPU can run.
const Kernels* kernelsGeneric();
const Kernels* kernelsAvx2();
const Kernels* kernelsAvx512();

} // namespace qs::gptq_detail

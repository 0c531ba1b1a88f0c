// GPTQ's linear algebra for avx2 (see gptq_kernels.h; the compile flags are set in core/CMakeLists.txt).
#define Eigen qs_eigen_avx2
#define QS_GPTQ_ISA_NAME "avx2"
#define QS_GPTQ_ACCESSOR kernelsAvx2
#include "core/quant/gptq_kernels.inc"

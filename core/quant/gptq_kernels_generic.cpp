// GPTQ's linear algebra with the build's baseline instruction set (see gptq_kernels.h).
#define Eigen qs_eigen_generic
#define QS_GPTQ_ISA_NAME "baseline"
#define QS_GPTQ_ACCESSOR kernelsGeneric
#include "core/quant/gptq_kernels.inc"

#pragma once
// Deadlines for tests that wait on a background job (a quantization, an evaluation, a sensitivity run).
// The figure given is for the normal build; ctest sets QS_TEST_TIME_SCALE in sanitizer builds, where the
// numeric work runs 5-20x slower, to stretch every such deadline by that factor.

#include <QtGlobal>

#include <algorithm>

namespace qs::test {

inline int deadlineMs(int ms)
{
    static const int scale = std::clamp(qEnvironmentVariableIntValue("QS_TEST_TIME_SCALE"), 1, 100);
    return ms * scale;
}

} // namespace qs::test

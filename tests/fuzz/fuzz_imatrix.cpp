// libFuzzer harness for the legacy llama.cpp imatrix (.dat) parser: qs::FormatError is the expected outcome
// for bad input; anything else (crash, sanitizer report, other exception) is a finding. Accepted files are
// looked up through the name mapping as the sensitivity matrix does.
#include "core/quant/imatrix.h"
#include "core/util/error.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    try {
        const auto m =
            qs::ImportanceMatrix::parseLegacy({reinterpret_cast<const std::byte*>(data), size}, "fuzz.dat");
        for (const auto& e : m.entries()) {
            (void)m.importanceFor(e.name, e.columns);
            if (auto hf = qs::ggufToHfName(e.name))
                (void)m.importanceFor(*hf, e.columns);
        }
    } catch (const qs::FormatError&) {
    }
    return 0;
}

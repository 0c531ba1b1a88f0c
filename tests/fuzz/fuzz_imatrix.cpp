// libFuzzer harness for the importance-file readers, through the same entry point the application uses
// (ImportanceMatrix::load on a file): a llama.cpp GGUF imatrix (sniffed by its magic) or a legacy .dat.
// qs::Error is the expected outcome for bad input; anything else (crash, sanitizer report, other exception)
// is a finding. Accepted files are looked up through the name mapping as the sensitivity matrix does. HDF5
// activation statistics go through the probe process and are fuzzed by fuzz_h5probe_protocol instead.
#include "core/quant/imatrix.h"
#include "core/util/error.h"
#include "memfile.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size >= 8 && std::memcmp(data, "\x89HDF\r\n\x1a\n", 8) == 0)
        return 0;
    const MemFile file("fuzz.imatrix", data, size);
    if (!file.ok())
        return 0;
    try {
        const auto m = qs::ImportanceMatrix::load(file.path());
        for (const auto& e : m.entries()) {
            (void)m.importanceFor(e.name, e.columns);
            if (auto hf = qs::ggufToHfName(e.name))
                (void)m.importanceFor(*hf, e.columns);
        }
    } catch (const qs::Error&) {
    }
    return 0;
}

// libFuzzer harness for the safetensors loader: the input becomes an in-memory file (memfd) opened through
// qs::loadSafetensors, and every tensor it accepts is decoded in full (the file size bounds the work).
// qs::Error is the expected outcome for bad input; anything else (crash, sanitizer report, other exception,
// leak) is a finding. An accepted file must also satisfy the invariants the loader promises.
#include "core/io/safetensors.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "memfile.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const MemFile file("fuzz.safetensors", data, size);
    if (!file.ok())
        return 0;
    const std::string path = file.path();
    try {
        const auto model = qs::loadSafetensors(path, nullptr);
        // The tensors tile the data region exactly.
        uint64_t total = 0;
        for (const auto& t : model->tensors()) {
            if (t.offset + t.bytes > size)
                std::abort();
            total += t.bytes;
        }
        if (!model->tensors().empty() && total != size - model->tensors().front().offset)
            std::abort();
        std::vector<float> out;
        for (const auto& t : model->tensors()) {
            out.resize(static_cast<size_t>(t.elements()));
            model->decode(t, 0, t.elements(), out.data());
        }
        (void)model->parameterCount();
    } catch (const qs::Error&) {
    }
    return 0;
}

// libFuzzer harness for the GGUF loader: the input becomes an in-memory file (memfd), is opened through
// qs::loadGguf, and the start of every tensor it accepts is decoded. qs::Error is the expected outcome
// for bad input; anything else (crash, sanitizer report, other exception, leak) is a finding.
#include "core/io/gguf.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "memfile.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const MemFile file("fuzz.gguf", data, size);
    if (!file.ok())
        return 0;
    const std::string path = file.path();
    try {
        const auto model = qs::loadGguf(path, nullptr);
        std::vector<float> out;
        size_t decoded = 0;
        for (const auto& t : model->tensors()) {
            if (++decoded > 64)
                break;
            // The first few blocks (or the whole tensor when it is shorter).
            const auto& info = qs::dtypeInfo(t.dtype);
            const uint64_t n =
                std::min<uint64_t>(t.elements(), uint64_t{4} * 256 / info.blockElements * info.blockElements);
            out.resize(static_cast<size_t>(n));
            try {
                model->decode(t, 0, n, out.data());
            } catch (const qs::Error& e) {
                if (e.code() != qs::ErrorCode::Unsupported) // an accepted tensor must decode or say why not
                    std::abort();
            }
        }
        (void)model->parameterCount();
        (void)model->config();
    } catch (const qs::Error&) {
    }
    return 0;
}

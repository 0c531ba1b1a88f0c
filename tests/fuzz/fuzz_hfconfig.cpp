// libFuzzer harness for qs::readHfConfig: the input is config.json (in a memfd). qs::Error is the expected
// outcome for bad input; a crash, sanitizer report or any other exception is a finding.
#include "core/model/model.h"
#include "core/util/error.h"
#include "memfile.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const MemFile file("config.json", data, size);
    if (!file.ok())
        return 0;
    try {
        const auto config = qs::readHfConfig(file.path());
        (void)config;
    } catch (const qs::Error&) {
    }
    return 0;
}

// libFuzzer harness for the plan-side parsers: plan files, config.json-derived layouts (and the memory model
// run on them), the GPU catalogue, rules files (matched against a model's names) and sensitivity error
// tables. The first byte selects the parser. qs::Error is the expected outcome for bad input; a crash,
// sanitizer report, hang or any other exception is a finding.
#include "core/plan/budget.h"
#include "core/plan/export.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/planio.h"
#include "core/util/error.h"

#include <cstdint>
#include <string>

namespace {
// A two-layer Llama: the names and roles rules are matched against.
constexpr const char* kSmallLlama =
    R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256,
        "intermediate_size": 688, "num_attention_heads": 8, "num_key_value_heads": 4,
        "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16"})";
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1)
        return 0;
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        switch (data[0] % 5) {
        case 0: {
            const qs::Plan plan = qs::planFromJson(text, "fuzz.json");
            (void)qs::planToJson(plan);
            for (auto target : {qs::ExportTarget::LlamaCpp, qs::ExportTarget::GptqModel,
                                qs::ExportTarget::LlmCompressor, qs::ExportTarget::CompressedTensors}) {
                try {
                    (void)qs::exportPlan(plan, target);
                } catch (const qs::ExportError&) {
                }
            }
            break;
        }
        case 1: {
            const qs::ModelLayout l = qs::layoutFromConfigJson(text, "config.json");
            const auto w = qs::summarizeWeights(l);
            qs::FootprintRequest req;
            req.context = 1000;
            qs::GpuSpec gpu;
            gpu.memoryBytes = 1ull << 34;
            gpu.bandwidthGBps = 100;
            (void)qs::fitOnGpu(l, w, req, gpu);
            (void)qs::makePreset("llama.cpp-Q4_K_M", l);
            break;
        }
        case 2:
            (void)qs::GpuCatalog::fromJson(text, "gpus.json");
            break;
        case 3: {
            // Parsed rules are then matched against real tensor names (RE2: linear time, no recursion).
            const auto rules = qs::parseRules(text, "rules.txt");
            static const qs::ModelLayout layout = qs::layoutFromConfigJson(kSmallLlama, "config.json");
            (void)qs::ruleMatches(layout, rules);
            break;
        }
        case 4:
            (void)qs::errorTableFromJson(text, true, "sensitivity.json");
            break;
        }
    } catch (const qs::Error&) {
    }
    return 0;
}

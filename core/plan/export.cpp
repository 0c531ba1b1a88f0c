#include "core/plan/export.h"

#include "core/util/atomicfile.h"

#include "core/plan/planio.h"
#include "core/quant/format.h"
#include "core/util/strings.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

namespace qs {

namespace {

std::string describe(ExportTarget target, const std::vector<ExportProblem>& problems)
{
    std::string s = std::string("cannot export to ") + exportTargetName(target) + ": " +
                    std::to_string(problems.size()) + " tensor(s) it cannot express";
    for (size_t i = 0; i < problems.size() && i < 8; ++i)
        s += (i ? "; " : ": ") + problems[i].tensor +
             (problems[i].format.empty() ? "" : " (" + problems[i].format + ")") + ": " + problems[i].reason;
    if (problems.size() > 8)
        s += "; ...";
    return s;
}

} // namespace

ExportError::ExportError(ExportTarget target, std::vector<ExportProblem> problems)
    : Error(ErrorCode::Unsupported, describe(target, problems)), m_target(target),
      m_problems(std::move(problems))
{
}

// ---- names ----

namespace {

bool isGgufName(std::string_view n)
{
    return n.starts_with("blk.") || n == "token_embd.weight" || n == "output.weight";
}

} // namespace

std::optional<std::string> ggufTensorName(std::string_view name)
{
    if (isGgufName(name))
        return std::string(name);
    const RoleInfo r = classifyTensor(name);
    if (r.role == TensorRole::Embedding)
        return std::string("token_embd.weight");
    if (r.role == TensorRole::OutputHead)
        return std::string("output.weight");
    const char* s = roleTraits(r.role).ggufName;
    if (!s || r.block < 0)
        return std::nullopt;
    return "blk." + std::to_string(r.block) + "." + s + ".weight";
}

std::optional<std::string> hfModuleName(std::string_view name)
{
    if (!isGgufName(name)) {
        if (name.ends_with(".weight"))
            return std::string(name.substr(0, name.size() - 7));
        return std::string(name);
    }
    const RoleInfo r = classifyTensor(name);
    if (r.role == TensorRole::Embedding)
        return std::string("model.embed_tokens");
    if (r.role == TensorRole::OutputHead)
        return std::string("lm_head");
    const char* s = roleTraits(r.role).hfModule;
    if (!s || r.block < 0)
        return std::nullopt; // stacked experts have no single module
    return "model.layers." + std::to_string(r.block) + "." + s;
}

namespace {

std::string regexEscape(std::string_view s)
{
    std::string r;
    for (char c : s) {
        if (std::strchr(".^$|()[]{}*+?\\", c))
            r.push_back('\\');
        r.push_back(c);
    }
    return r;
}

// Compresses names into anchored regexes: names that differ only in their block number become one pattern
// with an alternation of the blocks, or \d+ when every block of `allBlocks` is present.
std::vector<std::string> compressNames(const std::vector<std::string>& names, const std::set<int>& allBlocks)
{
    std::map<std::pair<std::string, std::string>, std::set<int>> templates; // (prefix, suffix) -> blocks
    std::vector<std::string> singles;
    for (const auto& n : names) {
        size_t pos = std::string::npos, len = 0;
        for (const char* marker : {"layers.", "blk."}) {
            const size_t p = n.find(marker);
            if (p != std::string::npos && (p == 0 || n[p - 1] == '.')) {
                pos = p + std::strlen(marker);
                break;
            }
        }
        if (pos != std::string::npos)
            while (pos + len < n.size() && std::isdigit(static_cast<unsigned char>(n[pos + len])))
                ++len;
        // A block number that does not print back the same (leading zeros) or is beyond any real model
        // (more than 6 digits; std::stoi would throw on a hostile plan's 12-digit one) stays a literal name.
        if (pos == std::string::npos || len == 0 || len > 6 || (len > 1 && n[pos] == '0')) {
            singles.push_back("^" + regexEscape(n) + "$");
            continue;
        }
        templates[{n.substr(0, pos), n.substr(pos + len)}].insert(std::stoi(n.substr(pos, len)));
    }
    std::vector<std::string> out;
    for (const auto& [key, blocks] : templates) {
        std::string alt;
        if (blocks == allBlocks && blocks.size() > 1) {
            alt = "\\d+";
        } else if (blocks.size() == 1) {
            alt = std::to_string(*blocks.begin());
        } else {
            alt = "(";
            for (int b : blocks)
                alt += (alt.size() > 1 ? "|" : "") + std::to_string(b);
            alt += ")";
        }
        out.push_back("^" + regexEscape(key.first) + alt + regexEscape(key.second) + "$");
    }
    out.insert(out.end(), singles.begin(), singles.end());
    return out;
}

std::set<int> blocksOf(const Plan& plan)
{
    std::set<int> b;
    for (const auto& [t, f] : plan.assignments()) {
        const int blk = classifyTensor(t).block;
        if (blk >= 0)
            b.insert(blk);
    }
    return b;
}

// ggml's spelling of a type name: lower case with an upper-case K ("q4_K", "q8_0", "bf16", "iq4_nl").
std::string ggmlTypeName(const std::string& format)
{
    std::string s = lower(format);
    if (s.ends_with("_k"))
        s.back() = 'K';
    return s;
}

bool isUnquantized(const QuantFormat& f)
{
    return f.traits().kind == FormatKind::Float;
}

// Tensors a vLLM-style runtime fuses must agree; names grouped by block and fused kind.
void checkFused(const Plan& plan, std::vector<ExportProblem>& problems)
{
    std::map<std::string, std::map<std::string, std::string>> groups; // label -> tensor -> format
    for (const auto& [t, f] : plan.assignments()) {
        const RoleInfo r = classifyTensor(t);
        if (r.block < 0)
            continue;
        const std::string b = "block " + std::to_string(r.block);
        switch (r.role) {
        case TensorRole::AttnQ:
        case TensorRole::AttnK:
        case TensorRole::AttnV:
            groups[b + " q/k/v"][t] = f;
            break;
        case TensorRole::MlpGate:
        case TensorRole::MlpUp:
            groups[b + " gate/up"][t] = f;
            break;
        case TensorRole::MoeExpertGate:
        case TensorRole::MoeExpertUp:
        case TensorRole::MoeExpertDown:
            groups[b + " experts"][t] = f;
            break;
        default:
            break;
        }
    }
    for (const auto& [label, members] : groups) {
        std::set<std::string> formats;
        for (const auto& [t, f] : members)
            formats.insert(f);
        if (formats.size() < 2)
            continue;
        for (const auto& [t, f] : members)
            problems.push_back({t, f, label + " are fused at run time and must share one format"});
    }
}

struct Scheme {
    int bits = 0;
    int groupSize = 0; // >0 group, -1 channel, 0 tensor
    bool symmetric = true;
    bool isFloat = false;
    bool operator<(const Scheme& o) const
    {
        return std::tie(isFloat, bits, groupSize, symmetric) <
               std::tie(o.isFloat, o.bits, o.groupSize, o.symmetric);
    }
};

std::string yamlQuote(const std::string& s)
{
    std::string r = "'";
    for (char c : s) {
        if (c == '\'')
            r += "''";
        else
            r.push_back(c);
    }
    return r + "'";
}

std::string jsonQuote(const std::string& s)
{
    std::string r = "\"";
    for (char c : s) {
        switch (c) {
        case '"':
            r += "\\\"";
            break;
        case '\\':
            r += "\\\\";
            break;
        case '\n':
            r += "\\n";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                r += buf;
            } else {
                r.push_back(c);
            }
        }
    }
    return r + "\"";
}

// ---- llama.cpp ----

ExportResult exportLlamaCpp(const Plan& plan)
{
    std::vector<ExportProblem> problems;
    std::map<std::string, std::vector<std::string>> byType; // ggml type -> gguf tensor names
    std::map<std::string, std::string> stacked;             // gguf stacked expert tensor -> type
    std::set<std::string> types;
    for (const auto& [t, fmt] : plan.assignments()) {
        auto f = findFormat(fmt);
        if (!f) {
            problems.push_back({t, fmt, "unknown format"});
            continue;
        }
        const RoleInfo r = classifyTensor(t);
        if (auto problem = targetFormatProblem(ExportTarget::LlamaCpp, *f, r.role)) {
            problems.push_back({t, f->name(), std::move(*problem)});
            continue;
        }
        auto g = ggufTensorName(t);
        if (!g) {
            problems.push_back({t, f->name(), "no GGUF tensor name is known for it"});
            continue;
        }
        const std::string type = ggmlTypeName(f->name());
        types.insert(type);
        if (r.role == TensorRole::MoeExpertGate || r.role == TensorRole::MoeExpertUp ||
            r.role == TensorRole::MoeExpertDown) {
            auto [it, inserted] = stacked.emplace(*g, type);
            if (!inserted && it->second != type)
                problems.push_back({t, f->name(),
                                    "llama.cpp stacks a layer's experts into " + *g +
                                        ", which holds one type (" + it->second + ")"});
            continue;
        }
        byType[type].push_back(*g);
    }
    if (!problems.empty())
        throw ExportError(ExportTarget::LlamaCpp, std::move(problems));
    for (const auto& [g, type] : stacked)
        byType[type].push_back(g);
    const std::set<int> blocks = blocksOf(plan);
    ExportResult r;
    for (auto& [type, names] : byType) {
        std::sort(names.begin(), names.end());
        for (const auto& pattern : compressNames(names, blocks))
            r.text += pattern + "=" + type + "\n";
    }
    // No --output-tensor-type / --token-embedding-type: llama_tensor_get_type returns those types before
    // the fallback step (src/llama-quant.cpp), so a head whose row the type cannot hold ends in "quantized
    // data validation failed". The type file's patterns name output.weight and token_embd.weight instead.
    r.commands.push_back("llama-quantize --tensor-type-file tensor-types.txt model-F16.gguf model-planned.gguf Q8_0");
    // The same overrides as repeated --tensor-type arguments, for short plans (single-quoted for the shell;
    // patterns never contain quotes).
    std::istringstream lines(r.text);
    std::vector<std::string> args;
    for (std::string line; std::getline(lines, line);)
        args.push_back(line);
    if (!args.empty() && args.size() <= 24) {
        std::string inlineCmd = "llama-quantize";
        for (const auto& a : args)
            inlineCmd += " --tensor-type '" + a + "'";
        r.commands.push_back(inlineCmd + " model-F16.gguf model-planned.gguf Q8_0");
    }
    r.notes.push_back(
        "The base type Q8_0 only decides which tensors llama-quantize touches: every planned tensor is "
        "overridden by the file. llama-quantize applies each override, then its fallback step: a type whose "
        "block does not divide the row is replaced (Q4_K -> Q5_0, Q6_K -> Q8_0, ...) and a type without a "
        "fallback (Q8_0, Q4_0, Q5_0, ...) stops it, so plan tensors in the types they are stored in (the "
        "presets and fit to budget do).");
    r.notes.push_back(
        "The type file holds nothing but pattern=type lines: llama-quantize has no comment syntax.");
    // tensor_requires_imatrix (src/llama-quant.cpp): IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S and IQ3_XXS need
    // an importance matrix; IQ4_NL, IQ4_XS and the k-quants do not (Q2_K only inside a Q2_K_S file).
    bool needsImatrix = false;
    for (const auto& type : types)
        needsImatrix |= type == "iq1_s" || type == "iq1_m" || type == "iq2_xxs" || type == "iq2_xs" ||
                        type == "iq2_s" || type == "iq3_xxs";
    if (needsImatrix)
        r.notes.push_back("IQ1/IQ2 types and IQ3_XXS need an importance matrix: add --imatrix FILE.");
    return r;
}

// One tensor of a plan as the Hugging Face exporters see it.
struct HfAssignment {
    const std::string& tensor;
    const QuantFormat& format;
    TensorRole role;
    const std::string& module;
};

// The pass the Hugging Face exporters (GPTQModel, compressed-tensors) share: every assignment with a known
// format and module name goes to `keep` when it stays in 16 bits, else to `quantize`, which returns why
// the target cannot store it, if it cannot. All problems, fused q/k/v and gate/up with differing formats
// among them, are reported together in one ExportError.
void forEachHfAssignment(const Plan& plan, ExportTarget target,
                         const std::function<void(const HfAssignment&)>& keep,
                         const std::function<std::optional<std::string>(const HfAssignment&)>& quantize)
{
    std::vector<ExportProblem> problems;
    for (const auto& [t, fmt] : plan.assignments()) {
        auto f = findFormat(fmt);
        if (!f) {
            problems.push_back({t, fmt, "unknown format"});
            continue;
        }
        auto m = hfModuleName(t);
        if (!m) {
            problems.push_back({t, f->name(), "no Hugging Face module name is known for it"});
            continue;
        }
        const HfAssignment a{t, *f, classifyTensor(t).role, *m};
        if (isUnquantized(*f))
            keep(a);
        else if (auto problem = targetFormatProblem(target, *f, a.role))
            problems.push_back({t, f->name(), std::move(*problem)});
        else if (auto other = quantize(a))
            problems.push_back({t, f->name(), std::move(*other)});
    }
    checkFused(plan, problems);
    if (!problems.empty())
        throw ExportError(target, std::move(problems));
}

// ---- GPTQModel ----

ExportResult exportGptqModel(const Plan& plan)
{
    std::map<std::string, Scheme> quantized; // module -> scheme
    std::vector<std::string> skipped;        // modules left in 16 bits
    bool lmHead = false;
    forEachHfAssignment(
        plan, ExportTarget::GptqModel,
        [&](const HfAssignment& a) {
            if (a.role != TensorRole::Embedding && a.role != TensorRole::OutputHead)
                skipped.push_back(a.module);
        },
        [&](const HfAssignment& a) -> std::optional<std::string> {
            const auto& tr = a.format.traits(); // expressible: targetFormatProblem checked it
            if (a.role == TensorRole::OutputHead)
                lmHead = true;
            quantized[a.module] = {tr.bits, tr.groupSize, tr.symmetric, false};
            return std::nullopt;
        });
    if (quantized.empty())
        throw ExportError(ExportTarget::GptqModel,
                          {{"(plan)", "", "no tensor is assigned an integer GPTQ format"}});

    // The most common scheme is the base; the others become dynamic overrides.
    std::map<Scheme, std::vector<std::string>> byScheme;
    for (const auto& [m, s] : quantized)
        byScheme[s].push_back(m);
    auto base = std::max_element(byScheme.begin(), byScheme.end(), [](const auto& a, const auto& b) {
        return a.second.size() < b.second.size();
    });
    const Scheme bs = base->first;
    const std::set<int> blocks = blocksOf(plan);
    std::ostringstream o;
    o << "{\n  \"bits\": " << bs.bits << ",\n  \"group_size\": " << bs.groupSize
      << ",\n  \"desc_act\": false,\n"
      << "  \"sym\": " << (bs.symmetric ? "true" : "false")
      << ",\n  \"lm_head\": " << (lmHead ? "true" : "false")
      << ",\n  \"quant_method\": \"gptq\",\n  \"checkpoint_format\": \"gptq\",\n  \"dynamic\": {";
    bool first = true;
    auto entry = [&](const std::string& key, const std::string& value) {
        o << (first ? "\n" : ",\n") << "    " << jsonQuote(key) << ": " << value;
        first = false;
    };
    std::sort(skipped.begin(), skipped.end());
    for (const auto& p : compressNames(skipped, blocks))
        entry("-:" + p, "{}");
    for (const auto& [s, modules] : byScheme) {
        if (!(s < bs) && !(bs < s))
            continue;
        const std::string v = "{\"bits\": " + std::to_string(s.bits) +
                              ", \"group_size\": " + std::to_string(s.groupSize) +
                              ", \"sym\": " + (s.symmetric ? "true" : "false") + "}";
        for (const auto& p : compressNames(modules, blocks))
            entry("+:" + p, v);
    }
    o << (first ? "}" : "\n  }") << ",\n  \"meta\": {\"quantizer\": [\"quantscope\"]}\n}\n";
    ExportResult r;
    r.text = o.str();
    r.commands.push_back(
        "QuantizeConfig.from_pretrained(DIR) or QuantizeConfig(**json.load(open('quantize_config.json'))) "
        "then GPTQModel.load(model_id, quant_config).quantize(calibration)");
    r.notes.push_back(
        "dynamic keys are Python regexes matched with re.match against module names: \"+:\" overrides "
        "bits/group_size/sym, \"-:\" keeps a module unquantized.");
    return r;
}

// ---- llm-compressor and compressed-tensors ----

struct CtPlan {
    std::map<Scheme, std::vector<std::string>> groups; // scheme -> modules
    std::vector<std::string> ignore;
};

CtPlan collectCompressedTensors(const Plan& plan, ExportTarget target)
{
    CtPlan ct;
    forEachHfAssignment(
        plan, target,
        [&](const HfAssignment& a) {
            if (a.role != TensorRole::Embedding)
                ct.ignore.push_back(a.module);
        },
        [&](const HfAssignment& a) -> std::optional<std::string> {
            const auto& tr = a.format.traits(); // integer or FP8-E4M3: targetFormatProblem checked it
            const Scheme s = tr.kind == FormatKind::Integer ? Scheme{tr.bits, tr.groupSize, tr.symmetric, false}
                                                            : Scheme{8, tr.groupSize < 0 ? -1 : 0, true, true};
            ct.groups[s].push_back(a.module);
            return std::nullopt;
        });
    if (ct.groups.empty())
        throw ExportError(target, {{"(plan)", "", "no tensor is assigned an integer or FP8 format"}});
    std::sort(ct.ignore.begin(), ct.ignore.end());
    return ct;
}

const char* strategyOf(const Scheme& s)
{
    return s.groupSize > 0 ? "group" : s.groupSize < 0 ? "channel" : "tensor";
}

ExportResult exportLlmCompressor(const Plan& plan)
{
    const CtPlan ct = collectCompressedTensors(plan, ExportTarget::LlmCompressor);
    const std::set<int> blocks = blocksOf(plan);
    std::ostringstream y;
    y << "quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      ignore: [";
    const auto ignore = compressNames(ct.ignore, blocks);
    for (size_t i = 0; i < ignore.size(); ++i) {
        // lm_head is ignored by its plain name, as llm-compressor's examples do.
        const std::string target = ignore[i] == "^lm_head$" ? "lm_head" : "re:" + ignore[i];
        y << (i ? ", " : "") << yamlQuote(target);
    }
    y << "]\n      config_groups:\n";
    int g = 0;
    for (const auto& [s, modules] : ct.groups) {
        y << "        group_" << g++ << ":\n          targets: [";
        const auto targets = compressNames(modules, blocks);
        for (size_t i = 0; i < targets.size(); ++i)
            y << (i ? ", " : "") << yamlQuote(targets[i] == "^lm_head$" ? "lm_head" : "re:" + targets[i]);
        y << "]\n          weights:\n            num_bits: " << s.bits
          << "\n            type: " << (s.isFloat ? "float" : "int")
          << "\n            symmetric: " << (s.symmetric ? "true" : "false")
          << "\n            strategy: " << strategyOf(s) << "\n";
        if (s.groupSize > 0)
            y << "            group_size: " << s.groupSize << "\n";
    }
    ExportResult r;
    r.text = y.str();
    r.commands.push_back(
        "oneshot(model=model, dataset=..., recipe='recipe.yaml') (llmcompressor); for GPTQ rounding "
        "rename QuantizationModifier to GPTQModifier");
    r.notes.push_back(
        "Targets are \"re:\" regexes matched against module names; every module the plan leaves in "
        "16 bits is listed in ignore.");
    return r;
}

ExportResult exportCompressedTensors(const Plan& plan)
{
    const CtPlan ct = collectCompressedTensors(plan, ExportTarget::CompressedTensors);
    const std::set<int> blocks = blocksOf(plan);
    bool anyInt = false, anyFloat = false;
    for (const auto& [s, m] : ct.groups)
        (s.isFloat ? anyFloat : anyInt) = true;
    const char* overall = anyInt && anyFloat ? "mixed-precision"
                          : anyFloat         ? "float-quantized"
                                             : "pack-quantized";
    std::ostringstream o;
    o << "{\n  \"quantization_config\": {\n    \"quant_method\": \"compressed-tensors\",\n    \"format\": \""
      << overall
      << "\",\n    \"quantization_status\": \"compressed\",\n    \"kv_cache_scheme\": null,\n    "
         "\"config_groups\": {";
    int g = 0;
    for (const auto& [s, modules] : ct.groups) {
        o << (g ? ",\n" : "\n") << "      \"group_" << g << "\": {\n        \"targets\": [";
        ++g;
        const auto targets = compressNames(modules, blocks);
        for (size_t i = 0; i < targets.size(); ++i)
            o << (i ? ", " : "") << jsonQuote(targets[i] == "^lm_head$" ? "lm_head" : "re:" + targets[i]);
        o << "],\n        \"weights\": {\"num_bits\": " << s.bits << ", \"type\": \""
          << (s.isFloat ? "float" : "int") << "\", \"symmetric\": " << (s.symmetric ? "true" : "false")
          << ", \"strategy\": \"" << strategyOf(s)
          << "\", \"group_size\": " << (s.groupSize > 0 ? std::to_string(s.groupSize) : std::string("null"))
          << ", \"dynamic\": false, \"actorder\": null, \"block_structure\": null, \"observer\": \"minmax\", "
             "\"observer_kwargs\": {}},\n        \"input_activations\": null,\n        "
             "\"output_activations\": null,\n"
          << "        \"format\": \"" << (s.isFloat ? "float-quantized" : "pack-quantized") << "\"\n      }";
    }
    o << "\n    },\n    \"ignore\": [";
    const auto ignore = compressNames(ct.ignore, blocks);
    for (size_t i = 0; i < ignore.size(); ++i)
        o << (i ? ", " : "") << jsonQuote(ignore[i] == "^lm_head$" ? "lm_head" : "re:" + ignore[i]);
    o << "]\n  }\n}\n";
    ExportResult r;
    r.text = o.str();
    r.notes.push_back(
        "Merge \"quantization_config\" into the quantized checkpoint's config.json; vLLM reads it with "
        "quant_method compressed-tensors.");
    return r;
}

} // namespace

ExportResult exportPlan(const Plan& plan, ExportTarget target)
{
    switch (target) {
    case ExportTarget::LlamaCpp:
        return exportLlamaCpp(plan);
    case ExportTarget::GptqModel:
        return exportGptqModel(plan);
    case ExportTarget::LlmCompressor:
        return exportLlmCompressor(plan);
    case ExportTarget::CompressedTensors:
        return exportCompressedTensors(plan);
    case ExportTarget::PlanJson: {
        ExportResult r;
        r.text = planToJson(plan);
        return r;
    }
    }
    return {};
}

void writeExport(const ExportResult& result, const std::filesystem::path& path)
{
    writeFileAtomically(path, result.text);
}

} // namespace qs

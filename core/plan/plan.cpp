#include "core/plan/plan.h"
#include "core/io/jsonscan.h"

#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/namepattern.h"
#include "core/util/strings.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace qs {

namespace {

std::optional<TensorRole> roleFromString(std::string_view name)
{
    const std::string n = lower(name);
    if (TensorRole role; roleFromName(n, &role))
        return role;
    // llama.cpp spellings as aliases.
    if (n == "attn_output" || n == "attn_o")
        return TensorRole::AttnOut;
    if (n == "ffn_gate")
        return TensorRole::MlpGate;
    if (n == "ffn_up")
        return TensorRole::MlpUp;
    if (n == "ffn_down")
        return TensorRole::MlpDown;
    if (n == "output" || n == "lm_head")
        return TensorRole::OutputHead;
    if (n == "token_embd")
        return TensorRole::Embedding;
    return std::nullopt;
}

std::shared_ptr<const QuantFormat> requireFormat(const std::string& name)
{
    auto f = findFormat(name);
    if (!f)
        throw Error(ErrorCode::BadValue, "unknown format '" + name + "'");
    return f;
}

// Canonical spelling of a format name; unknown names are kept as written (the check reports them).
std::string canonical(const std::string& name)
{
    auto f = findFormat(name);
    return f ? f->name() : name;
}

double bitsOf(const QuantFormat& f, const TensorInfo& t)
{
    auto b = f.storedBytes(t.matrixRows(), t.matrixColumns());
    return b ? 8.0 * static_cast<double>(*b) / static_cast<double>(std::max<uint64_t>(1, t.elements()))
             : 1e9; // unusable formats sort as "largest"
}

} // namespace

ModelIdentity identityOf(const ModelLayout& model)
{
    ModelIdentity id;
    id.path = model.path;
    id.architecture = model.config.architecture;
    id.tensorCount = model.tensors.size();
    id.parameterCount = model.parameterCount();
    id.fileSizes = model.fileSizes;
    return id;
}

std::vector<std::string> Plan::defaultTiers()
{
    return {"BF16", "Q8_0", "Q6_K", "Q4_K", "INT4-g128-asym", "Q3_K", "Q2_K"};
}

int Plan::tierIndex(const std::string& format) const
{
    const std::string f = lower(canonical(format));
    for (size_t i = 0; i < m_tiers.size(); ++i)
        if (lower(canonical(m_tiers[i])) == f)
            return static_cast<int>(i);
    return -1;
}

bool Plan::addTier(const std::string& format, size_t index)
{
    if (tierIndex(format) >= 0)
        return false;
    m_tiers.insert(m_tiers.begin() + static_cast<std::ptrdiff_t>(std::min(index, m_tiers.size())),
                   canonical(format));
    return true;
}

bool Plan::removeTier(const std::string& format)
{
    const int i = tierIndex(format);
    if (i < 0)
        return false;
    m_tierMethods.erase(m_tiers[size_t(i)]);
    m_tiers.erase(m_tiers.begin() + i);
    return true;
}

void Plan::setTiers(std::vector<std::string> tiers)
{
    m_tiers = std::move(tiers);
    for (auto it = m_tierMethods.begin(); it != m_tierMethods.end();) {
        const int i = tierIndex(it->first);
        if (i < 0) {
            it = m_tierMethods.erase(it);
        } else if (m_tiers[size_t(i)] != it->first) { // the same tier spelled differently: re-key
            const auto [key, method] = *it;
            it = m_tierMethods.erase(it);
            m_tierMethods[m_tiers[size_t(tierIndex(key))]] = method;
        } else {
            ++it;
        }
    }
}

QuantMethod Plan::tierMethod(const std::string& format) const
{
    const int i = tierIndex(format);
    if (i < 0)
        return QuantMethod::Rtn;
    auto it = m_tierMethods.find(m_tiers[size_t(i)]);
    return it == m_tierMethods.end() ? QuantMethod::Rtn : it->second;
}

bool Plan::setTierMethod(const std::string& format, QuantMethod method)
{
    const int i = tierIndex(format);
    if (i < 0)
        throw Error(ErrorCode::BadValue, "'" + format + "' is not a tier of the plan");
    const std::string& tier = m_tiers[size_t(i)];
    if (const std::string problem = quantMethodProblem(method, tier); !problem.empty())
        throw Error(ErrorCode::BadValue, problem);
    if (tierMethod(tier) == method)
        return false;
    if (method == QuantMethod::Rtn)
        m_tierMethods.erase(tier);
    else
        m_tierMethods[tier] = method;
    return true;
}

QuantMethod Plan::methodOf(const std::string& tensor) const
{
    auto it = m_assignments.find(tensor);
    return it == m_assignments.end() ? QuantMethod::Rtn : tierMethod(it->second);
}

bool Plan::moveTier(size_t from, size_t to)
{
    if (from >= m_tiers.size() || to >= m_tiers.size() || from == to)
        return false;
    std::string t = m_tiers[from];
    m_tiers.erase(m_tiers.begin() + static_cast<std::ptrdiff_t>(from));
    m_tiers.insert(m_tiers.begin() + static_cast<std::ptrdiff_t>(to), std::move(t));
    return true;
}

std::optional<std::string> Plan::formatOf(const std::string& tensor) const
{
    auto it = m_assignments.find(tensor);
    if (it == m_assignments.end())
        return std::nullopt;
    return it->second;
}

bool Plan::assign(const std::string& tensor, const std::string& format)
{
    const std::string f = canonical(format);
    auto it = m_assignments.find(tensor);
    if (it != m_assignments.end() && it->second == f)
        return false;
    m_assignments[tensor] = f;
    return true;
}

size_t Plan::assignMany(const std::vector<std::string>& tensors, const std::string& format)
{
    size_t n = 0;
    for (const auto& t : tensors)
        n += assign(t, format);
    return n;
}

size_t Plan::assignMany(const std::map<std::string, std::string>& assignments)
{
    size_t n = 0;
    for (const auto& [t, f] : assignments)
        n += assign(t, f);
    return n;
}

bool Plan::unassign(const std::string& tensor)
{
    return m_assignments.erase(tensor) > 0;
}

namespace {

// Assigns the format `tensor` is stored in for `target`; throws when the target cannot express it.
void assignStorable(Plan& plan, const TensorInfo& tensor, const std::string& format, ExportTarget target,
                    std::vector<std::string>* notes, const std::string& context)
{
    const StorableFormat s = storableFormat(format, tensor, target);
    if (s.refused())
        throw Error(ErrorCode::BadValue, context + " cannot be expressed for " + exportTargetName(target) +
                                             ": " + tensor.name + ": " + s.reason);
    if (s.changed() && notes)
        notes->push_back(tensor.name + ": " + s.reason);
    plan.assign(tensor.name, s.format);
}

} // namespace

std::vector<int> ruleMatches(const ModelLayout& model, const std::vector<PlanRule>& rules)
{
    struct Compiled {
        std::optional<NamePattern> re;
        TensorRole role = TensorRole::Other;
    };
    std::vector<Compiled> compiled;
    for (const auto& r : rules) {
        requireFormat(r.format);
        Compiled c;
        if (r.match == PlanRule::Match::Regex) {
            c.re.emplace(r.pattern); // linear-time matching: names and patterns are hostile input
        } else {
            auto role = roleFromString(r.pattern);
            if (!role)
                throw Error(ErrorCode::BadValue, "unknown role '" + r.pattern + "' in rule");
            c.role = *role;
        }
        compiled.push_back(std::move(c));
    }
    std::vector<int> matches(model.tensors.size(), kNotPlannable);
    for (size_t i = 0; i < model.tensors.size(); ++i) {
        const TensorInfo& t = model.tensors[i];
        if (!isPlannable(t))
            continue;
        const TensorRole role = planRole(t).role;
        matches[i] = kNoRule;
        for (size_t k = 0; k < compiled.size(); ++k)
            if (compiled[k].re ? compiled[k].re->search(t.name) : compiled[k].role == role) {
                matches[i] = int(k);
                break;
            }
    }
    return matches;
}

void applyRules(Plan& plan, const ModelLayout& model, const std::vector<PlanRule>& rules,
                const std::string& fallbackFormat, ExportTarget target, std::vector<std::string>* notes)
{
    const std::vector<int> matches = ruleMatches(model, rules);
    if (!fallbackFormat.empty())
        requireFormat(fallbackFormat);
    for (size_t i = 0; i < model.tensors.size(); ++i) {
        const TensorInfo& t = model.tensors[i];
        if (matches[i] >= 0) {
            const PlanRule& rule = rules[size_t(matches[i])];
            assignStorable(plan, t, rule.format, target, notes, "rule '" + rule.pattern + "'");
        } else if (matches[i] == kNoRule && !fallbackFormat.empty()) {
            assignStorable(plan, t, fallbackFormat, target, notes, fallbackFormat);
        }
    }
}

std::vector<PlanRule> parseRules(const std::string& text, const std::string& fileName)
{
    std::vector<PlanRule> rules;
    const std::string t(trim(text));
    if (!t.empty() && t.front() == '{') {
        const QJsonDocument doc = json::parseDocument(t, fileName, "json");
        int i = 0;
        for (const QJsonValue& v : doc.object().value(QStringLiteral("rules")).toArray()) {
            const std::string where = "rules[" + std::to_string(i++) + "]";
            const QJsonObject o = v.toObject();
            PlanRule r;
            if (o.contains(QStringLiteral("regex"))) {
                r.pattern = o.value(QStringLiteral("regex")).toString().toStdString();
            } else if (o.contains(QStringLiteral("role"))) {
                r.match = PlanRule::Match::Role;
                r.pattern = o.value(QStringLiteral("role")).toString().toStdString();
            } else {
                throw FormatError(ErrorCode::BadValue, fileName, where, std::nullopt,
                                  "needs \"regex\" or \"role\"");
            }
            r.format = o.value(QStringLiteral("format")).toString().toStdString();
            if (r.pattern.empty() || r.format.empty())
                throw FormatError(ErrorCode::BadValue, fileName, where, std::nullopt,
                                  "empty pattern or format");
            rules.push_back(std::move(r));
        }
        return rules;
    }
    std::istringstream in(text);
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line)) {
        ++lineNo;
        line = std::string(trim(line));
        if (line.empty() || line.front() == '#')
            continue;
        const size_t eq = line.rfind('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == line.size())
            throw FormatError(ErrorCode::BadValue, fileName, "line " + std::to_string(lineNo), std::nullopt,
                              "expected PATTERN=FORMAT or role:ROLE=FORMAT");
        PlanRule r;
        r.pattern = trim(std::string_view(line).substr(0, eq));
        r.format = trim(std::string_view(line).substr(eq + 1));
        if (r.pattern.starts_with("role:")) {
            r.match = PlanRule::Match::Role;
            r.pattern = std::string(trim(std::string_view(r.pattern).substr(5)));
        }
        rules.push_back(std::move(r));
    }
    return rules;
}

// ---- llama.cpp mixes ----

namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer in between.
bool useMoreBits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

std::string normaliseFtype(const std::string& name)
{
    std::string n = lower(name);
    if (n.starts_with("llama.cpp-"))
        n = n.substr(10);
    else if (n.starts_with("llamacpp-"))
        n = n.substr(9);
    if (n == "q4_k_m" || n == "q5_k_m" || n == "q3_k_m")
        return n;
    return {};
}

} // namespace

std::string llamaCppMixType(const std::string& ftypeName, const TensorInfo& tensor, const ModelLayout& model)
{
    const std::string ftype = normaliseFtype(ftypeName);
    if (ftype.empty())
        throw Error(ErrorCode::BadValue,
                    "unknown llama.cpp mix '" + ftypeName + "' (Q4_K_M, Q5_K_M, Q3_K_M)");
    const bool q3 = ftype == "q3_k_m", q4 = ftype == "q4_k_m";
    std::string type = q3 ? "Q3_K" : q4 ? "Q4_K" : "Q5_K";
    const ModelConfig& c = model.config;
    const int nExpert = static_cast<int>(c.experts);
    const RoleInfo role = planRole(tensor);
    // The layer count llama.cpp uses for its counters (hparams.n_layer); fall back to the blocks we see.
    int nLayer = static_cast<int>(c.layers);
    if (nLayer == 0)
        for (const auto& t : model.tensors)
            nLayer = std::max(nLayer, planRole(t).block + 1);
    const int layer = std::max(0, role.block);
    bool hasOutput = false;
    for (const auto& t : model.tensors)
        hasOutput |= planRole(t).role == TensorRole::OutputHead;
    const bool is70B = (c.architecture == "llama" || c.architecture.empty()) && nLayer == 80;

    switch (role.role) {
    case TensorRole::OutputHead:
        // Output head: Q6_K unless its rows do not fit 256-value blocks (then Q8_0).
        return tensor.matrixColumns() % 256 != 0 ? "Q8_0" : "Q6_K";
    case TensorRole::Embedding:
        if (!hasOutput) // tied: the embedding is the head
            return tensor.matrixColumns() % 256 != 0 ? "Q8_0" : "Q6_K";
        return type;
    case TensorRole::AttnV:
        if (q3)
            type = layer < 2 ? "Q5_K" : "Q4_K";
        else if (useMoreBits(layer, nLayer))
            type = "Q6_K";
        if (is70B && (type == "Q3_K" || type == "Q4_K"))
            type = "Q5_K";
        if (nExpert == 8)
            type = "Q8_0";
        return type;
    case TensorRole::AttnK:
        return nExpert == 8 ? "Q8_0" : type;
    case TensorRole::MlpDown:
    case TensorRole::MoeExpertDown:
        if (q3)
            return layer < nLayer / 16 ? "Q5_K" : "Q4_K";
        if (useMoreBits(layer, nLayer))
            return "Q6_K";
        return type;
    case TensorRole::AttnOut:
        if (nExpert == 8)
            return (q3 || q4) ? "Q5_K" : type;
        return q3 ? "Q4_K" : type;
    case TensorRole::AttnQKV:
        return q3 ? "Q4_K" : q4 ? "Q5_K" : "Q6_K";
    default:
        return type;
    }
}

std::vector<std::string> defaultTiersFor(ExportTarget target)
{
    switch (target) {
    case ExportTarget::LlamaCpp:
        return {"BF16", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "IQ4_XS", "Q3_K", "Q2_K"};
    case ExportTarget::GptqModel:
        return {"BF16", "INT8-ch-sym", "INT4-g32-asym", "INT4-g128-asym", "INT3-g128-asym", "INT2-g64-asym"};
    case ExportTarget::LlmCompressor:
    case ExportTarget::CompressedTensors:
        return {"BF16", "FP8-E4M3-ch", "INT8-ch-sym", "INT4-g32-asym", "INT4-g128-asym"};
    case ExportTarget::PlanJson:
        break;
    }
    return Plan::defaultTiers();
}

std::vector<std::string> presetNames()
{
    std::vector<std::string> names = {"llama.cpp-Q4_K_M", "llama.cpp-Q5_K_M", "llama.cpp-Q3_K_M",
                                      "keep-embeddings-8bit"};
    for (const auto& t : Plan::defaultTiers())
        names.push_back("all-" + t);
    return names;
}

Plan makePreset(const std::string& name, const ModelLayout& model, ExportTarget target,
                std::vector<std::string>* notes)
{
    Plan plan;
    plan.setIdentity(identityOf(model));
    plan.setTarget(target);
    plan.setTiers(defaultTiersFor(target));
    const std::string n = lower(name);
    const std::string context = "preset '" + name + "'";
    if (!normaliseFtype(n).empty()) {
        const std::string ftype = normaliseFtype(n);
        if (target == ExportTarget::PlanJson) { // llama.cpp's own mixes are plans for llama.cpp
            target = ExportTarget::LlamaCpp;
            plan.setTarget(target);
            plan.setTiers(defaultTiersFor(target));
        }
        for (const auto& t : model.tensors)
            if (isPlannable(t))
                assignStorable(plan, t, llamaCppMixType(ftype, t, model), target, notes, context);
        plan.setPreset("llama.cpp-" + std::string(ftype == "q4_k_m"   ? "Q4_K_M"
                                                  : ftype == "q5_k_m" ? "Q5_K_M"
                                                                      : "Q3_K_M"));
        return plan;
    }
    if (n.starts_with("keep-embeddings-8bit")) {
        std::string base = "Q4_K";
        if (n.size() > 20) {
            if (n[20] != ':')
                throw Error(ErrorCode::BadValue, "unknown preset '" + name + "'");
            base = name.substr(21);
        }
        auto bf = requireFormat(base);
        const FormatKind k = bf->traits().kind;
        const std::string eight = k == FormatKind::Integer ? "INT8-ch-sym"
                                  : k == FormatKind::Fp8   ? "FP8-E4M3-ch"
                                                           : "Q8_0";
        applyRules(
            plan, model,
            {{PlanRule::Match::Role, "embedding", eight}, {PlanRule::Match::Role, "output_head", eight}},
            bf->name(), target, notes);
        plan.setRules(
            {{PlanRule::Match::Role, "embedding", eight}, {PlanRule::Match::Role, "output_head", eight}});
        plan.setPreset("keep-embeddings-8bit:" + bf->name());
        return plan;
    }
    if (n.starts_with("all-")) {
        auto f = requireFormat(name.substr(4));
        // The integer tools (GPTQModel, llm-compressor, compressed-tensors) quantize Linear layers only and
        // keep the embedding and the output head at 16 bits: an all-INT preset does the same, so it exports
        // as it is.
        std::vector<PlanRule> rules;
        if (f->traits().kind == FormatKind::Integer)
            rules = {{PlanRule::Match::Role, "embedding", "BF16"}, {PlanRule::Match::Role, "output_head", "BF16"}};
        applyRules(plan, model, rules, f->name(), target, notes);
        plan.setRules(rules);
        plan.setPreset("all-" + f->name());
        return plan;
    }
    throw Error(ErrorCode::BadValue, "unknown preset '" + name + "'");
}

uint64_t plannedBytes(const Plan& plan, const TensorInfo& tensor)
{
    auto it = plan.assignments().find(tensor.name);
    if (it == plan.assignments().end())
        return tensor.bytes;
    auto f = findFormat(it->second);
    if (!f)
        return tensor.bytes;
    auto b = f->storedBytes(tensor.matrixRows(), tensor.matrixColumns());
    if (b)
        return *b;
    // Counted in the format it would be stored in, not the stored dtype (an F32 checkpoint would count a
    // Q4_K tensor that llama.cpp stores in Q5_0 at 4 bytes per weight).
    const StorableFormat s = storableFormat(f->name(), tensor, ExportTarget::PlanJson);
    auto sf = s.refused() ? nullptr : findFormat(s.format);
    auto sb = sf ? sf->storedBytes(tensor.matrixRows(), tensor.matrixColumns()) : std::nullopt;
    return sb ? *sb : tensor.bytes;
}

TensorBytesFn planBytesFn(const Plan& plan)
{
    return [plan](const TensorInfo& t) { return plannedBytes(plan, t); };
}

TierBoard tierBoard(const Plan& plan, const ModelLayout& model)
{
    TierBoard b;
    b.columns.resize(plan.tiers().size());
    std::map<std::string, int> tierOf; // canonical lower-case format -> column
    for (size_t i = 0; i < plan.tiers().size(); ++i)
        tierOf.emplace(lower(canonical(plan.tiers()[i])), static_cast<int>(i));
    for (size_t i = 0; i < model.tensors.size(); ++i) {
        const auto& t = model.tensors[i];
        if (!isPlannable(t))
            continue;
        auto f = plan.formatOf(t.name);
        if (!f) {
            b.unassigned.push_back(i);
            continue;
        }
        auto it = tierOf.find(lower(canonical(*f)));
        if (it == tierOf.end())
            b.otherFormats.push_back(i);
        else
            b.columns[static_cast<size_t>(it->second)].push_back(i);
    }
    return b;
}

// ---- constraints ----

const char* planIssueKindName(PlanIssueKind kind)
{
    switch (kind) {
    case PlanIssueKind::UnknownFormat:
        return "unknown-format";
    case PlanIssueKind::UnsupportedShape:
        return "unsupported-shape";
    case PlanIssueKind::FusedMismatch:
        return "fused-mismatch";
    case PlanIssueKind::NotPlannable:
        return "not-plannable";
    case PlanIssueKind::NotExpressible:
        return "not-expressible";
    }
    return "unknown";
}

std::map<std::string, std::vector<std::string>> fusedGroups(const ModelLayout& model)
{
    std::map<std::string, std::vector<std::string>> groups;
    for (const auto& t : model.tensors) {
        if (!isPlannable(t))
            continue;
        const RoleInfo r = planRole(t);
        if (r.block < 0)
            continue;
        const std::string b = "block " + std::to_string(r.block);
        switch (r.role) {
        case TensorRole::AttnQ:
        case TensorRole::AttnK:
        case TensorRole::AttnV:
            groups[b + " q/k/v"].push_back(t.name);
            break;
        case TensorRole::MlpGate:
        case TensorRole::MlpUp:
            groups[b + " gate/up"].push_back(t.name);
            break;
        case TensorRole::MoeExpertGate:
        case TensorRole::MoeExpertUp:
        case TensorRole::MoeExpertDown:
            groups[b + " experts"].push_back(t.name);
            break;
        default:
            break;
        }
    }
    for (auto it = groups.begin(); it != groups.end();)
        it = it->second.size() < 2 ? groups.erase(it) : std::next(it);
    return groups;
}

std::vector<PlanIssue> checkPlan(const Plan& plan, const ModelLayout& model, const CheckOptions& options)
{
    std::vector<PlanIssue> issues;
    for (const auto& [name, format] : plan.assignments()) {
        const TensorInfo* t = model.find(name);
        if (!t || !isPlannable(*t)) {
            PlanIssue i{
                PlanIssueKind::NotPlannable,
                name + (t ? " is not a weight matrix and keeps its stored type" : " is not in the model"),
                {name},
                {}};
            i.fixes.push_back({"Remove the assignment", {{name, ""}}});
            issues.push_back(std::move(i));
            continue;
        }
        auto f = findFormat(format);
        if (!f) {
            issues.push_back(
                {PlanIssueKind::UnknownFormat, name + ": unknown format '" + format + "'", {name}, {}});
            continue;
        }
        if (auto problem = targetFormatProblem(options.target, *f, planRole(*t).role)) {
            PlanIssue i{PlanIssueKind::NotExpressible, name + ": " + *problem, {name}, {}};
            const StorableFormat s = storableFormat(f->name(), *t, options.target);
            if (!s.refused())
                i.fixes.push_back({"Use " + s.format, {{name, s.format}}});
            issues.push_back(std::move(i));
            continue;
        }
        if (!f->supports(t->matrixRows(), t->matrixColumns())) {
            PlanIssue i{PlanIssueKind::UnsupportedShape,
                        name + ": " + f->name() + " cannot store rows of " + std::to_string(t->matrixColumns()) +
                            " values",
                        {name},
                        {}};
            const StorableFormat s = storableFormat(f->name(), *t, options.target);
            const std::string fb = s.refused() ? f->name() : s.format;
            if (fb != f->name()) {
                const bool ggml = f->traits().kind == FormatKind::Ggml || f->traits().kind == FormatKind::Mx;
                const bool tableEntry = ggml && llamaCppStoredType(f->name(), t->matrixColumns()).has_value();
                i.fixes.push_back({"Use " + fb +
                                       (tableEntry ? std::string(" (llama.cpp's fallback)")
                                        : ggml     ? std::string(" (llama.cpp defines no fallback)")
                                                   : std::string()),
                                   {{name, fb}}});
            }
            // The nearest more precise tier that can hold the shape.
            const int tier = plan.tierIndex(f->name());
            for (int k = (tier < 0 ? static_cast<int>(plan.tiers().size()) : tier) - 1; k >= 0; --k) {
                auto alt = findFormat(plan.tiers()[static_cast<size_t>(k)]);
                if (alt && alt->supports(t->matrixRows(), t->matrixColumns()) && alt->name() != fb) {
                    i.fixes.push_back({"Use tier " + alt->name(), {{name, alt->name()}}});
                    break;
                }
            }
            issues.push_back(std::move(i));
        }
    }
    if (options.fusedGroups) {
        for (const auto& group : fusedGroups(model)) {
            const std::string& label = group.first;
            const std::vector<std::string>& names = group.second;
            std::set<std::string> formats;
            for (const auto& n : names)
                formats.insert(plan.formatOf(n).value_or(""));
            if (formats.size() < 2)
                continue;
            // Order the group's formats by bits per weight on its first tensor.
            const TensorInfo* first = model.find(names.front());
            std::string most, least;
            double mostBits = -1, leastBits = 1e18;
            for (const auto& fmt : formats) {
                auto f = fmt.empty() ? nullptr : findFormat(fmt);
                const double b =
                    f ? bitsOf(*f, *first)
                      : 8.0 * static_cast<double>(first->bytes) / std::max<uint64_t>(1, first->elements());
                if (b > mostBits)
                    mostBits = b, most = fmt;
                if (b < leastBits)
                    leastBits = b, least = fmt;
            }
            std::string list;
            for (const auto& fmt : formats)
                list += (list.empty() ? "" : ", ") + (fmt.empty() ? std::string("stored") : fmt);
            PlanIssue i{PlanIssueKind::FusedMismatch,
                        label + " are fused at run time but use different formats (" + list + ")",
                        names,
                        {}};
            auto fixAll = [&](const std::string& fmt, const std::string& verb) {
                PlanFix fix{verb + " " + label + " to " + (fmt.empty() ? "the stored type" : fmt), {}};
                for (const auto& n : names)
                    fix.assignments[n] = fmt;
                i.fixes.push_back(std::move(fix));
            };
            fixAll(most, "Raise");
            if (least != most)
                fixAll(least, "Lower");
            issues.push_back(std::move(i));
        }
    }
    return issues;
}

CheckOptions checkOptionsFor(ExportTarget target)
{
    CheckOptions o;
    o.fusedGroups = targetFusesGroups(target);
    o.target = target;
    return o;
}

Plan applyFix(Plan plan, const PlanFix& fix)
{
    for (const auto& [t, f] : fix.assignments) {
        if (f.empty())
            plan.unassign(t);
        else
            plan.assign(t, f);
    }
    return plan;
}

} // namespace qs

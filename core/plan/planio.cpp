#include "core/plan/planio.h"

#include "core/io/jsonscan.h"
#include "core/model/model.h"
#include "core/util/atomicfile.h"
#include "core/util/fileio.h"
#include "core/util/namepattern.h"

#include <cmath>
#include <QCryptographicHash>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QStandardPaths>

namespace qs {

PlanFileError::PlanFileError(PlanErrorKind kind, std::string file, std::string field,
                             std::optional<uint64_t> offset, std::string message)
    : FormatError(kind == PlanErrorKind::Io                   ? ErrorCode::Io
                  : kind == PlanErrorKind::UnsupportedVersion ? ErrorCode::BadVersion
                  : kind == PlanErrorKind::NotAPlan           ? ErrorCode::BadMagic
                                                              : ErrorCode::BadValue,
                  std::move(file), std::move(field), offset, std::move(message)),
      m_kind(kind)
{
}

namespace {

QString q(const std::string& s)
{
    return QString::fromStdString(s);
}

} // namespace

std::string planToJson(const Plan& plan)
{
    QJsonObject root;
    root[QStringLiteral("format")] = QStringLiteral("quantscope-plan");
    root[QStringLiteral("version")] = kPlanFormatVersion;
    const ModelIdentity& id = plan.identity();
    QJsonObject model;
    model[QStringLiteral("path")] = q(id.path);
    model[QStringLiteral("architecture")] = q(id.architecture);
    model[QStringLiteral("tensor_count")] = static_cast<qint64>(id.tensorCount);
    model[QStringLiteral("parameter_count")] = static_cast<qint64>(id.parameterCount);
    QJsonArray sizes;
    for (auto s : id.fileSizes)
        sizes.append(static_cast<qint64>(s));
    model[QStringLiteral("file_sizes")] = sizes;
    root[QStringLiteral("model")] = model;
    if (!plan.preset().empty())
        root[QStringLiteral("preset")] = q(plan.preset());
    if (plan.target() != ExportTarget::PlanJson)
        root[QStringLiteral("target")] = QString::fromLatin1(exportTargetName(plan.target()));
    QJsonArray tiers;
    for (const auto& t : plan.tiers())
        tiers.append(q(t));
    root[QStringLiteral("tiers")] = tiers;
    if (!plan.tierMethods().empty()) {
        QJsonObject methods;
        for (const auto& [tier, method] : plan.tierMethods())
            methods[q(tier)] = QString::fromLatin1(quantMethodName(method));
        root[QStringLiteral("tier_methods")] = methods;
    }
    QJsonArray rules;
    for (const auto& r : plan.rules()) {
        QJsonObject o;
        o[r.match == PlanRule::Match::Regex ? QStringLiteral("regex") : QStringLiteral("role")] =
            q(r.pattern);
        o[QStringLiteral("format")] = q(r.format);
        rules.append(o);
    }
    root[QStringLiteral("rules")] = rules;
    QJsonObject assignments;
    for (const auto& [t, f] : plan.assignments())
        assignments[q(t)] = q(f);
    root[QStringLiteral("assignments")] = assignments;
    return QJsonDocument(root).toJson(QJsonDocument::Indented).toStdString();
}

Plan planFromJson(const std::string& json, const std::string& fileName)
{
    QJsonDocument doc;
    try {
        doc = json::parseDocument(json, fileName, "json");
    } catch (const FormatError& e) {
        throw PlanFileError(PlanErrorKind::NotJson, fileName, "json", e.offset(), e.detail());
    }
    if (!doc.isObject())
        throw PlanFileError(PlanErrorKind::NotAPlan, fileName, "root", std::nullopt,
                            "expected a JSON object");
    const QJsonObject root = doc.object();
    if (root.value(QStringLiteral("format")).toString() != QLatin1String("quantscope-plan"))
        throw PlanFileError(PlanErrorKind::NotAPlan, fileName, "format", std::nullopt,
                            "not a Quantscope plan (\"format\" must be \"quantscope-plan\")");
    const QJsonValue v = root.value(QStringLiteral("version"));
    if (!v.isDouble())
        throw PlanFileError(PlanErrorKind::UnsupportedVersion, fileName, "version", std::nullopt,
                            "missing version");
    if (v.toDouble() != kPlanFormatVersion)
        throw PlanFileError(PlanErrorKind::UnsupportedVersion, fileName, "version", std::nullopt,
                            "plan version " + QString::number(v.toDouble()).toStdString() +
                                " is not supported (this build reads " + std::to_string(kPlanFormatVersion) +
                                ")");
    auto bad = [&](const std::string& field, const std::string& msg) {
        return PlanFileError(PlanErrorKind::BadField, fileName, field, std::nullopt, msg);
    };
    Plan plan;
    const QJsonValue modelV = root.value(QStringLiteral("model"));
    if (!modelV.isUndefined() && !modelV.isObject())
        throw bad("model", "expected an object");
    const QJsonObject model = modelV.toObject();
    // Counts are checked before anything is converted, so a small file cannot make large structures.
    auto limit = [&](const std::string& field, qsizetype n, uint64_t max, const char* what) {
        if (static_cast<uint64_t>(n) > max)
            throw bad(field, std::to_string(n) + " " + what + " exceed the limit of " + std::to_string(max));
    };
    limit("tiers", root.value(QStringLiteral("tiers")).toArray().size(), kMaxPlanTiers, "tiers");
    limit("tier_methods", root.value(QStringLiteral("tier_methods")).toObject().size(), kMaxPlanTiers,
          "tier methods");
    limit("rules", root.value(QStringLiteral("rules")).toArray().size(), kMaxPlanRules, "rules");
    limit("assignments", root.value(QStringLiteral("assignments")).toObject().size(), kMaxTensorCount,
          "assignments");
    limit("model.file_sizes", model.value(QStringLiteral("file_sizes")).toArray().size(), kMaxPlanFiles,
          "file sizes");
    ModelIdentity id;
    id.path = model.value(QStringLiteral("path")).toString().toStdString();
    id.architecture = model.value(QStringLiteral("architecture")).toString().toStdString();
    // JSON numbers are doubles: a count must be whole and at most 2^53 (exact, and convertible).
    auto wholeNumber = [&](const QJsonValue& c, const std::string& field) -> uint64_t {
        const double d = c.toDouble(-1);
        if (!c.isDouble() || !(d >= 0 && d <= 9007199254740992.0) || d != std::floor(d))
            throw bad(field, "expected a non-negative integer");
        return static_cast<uint64_t>(d);
    };
    auto count = [&](const char* key) -> uint64_t {
        const QJsonValue c = model.value(QLatin1String(key));
        return c.isUndefined() ? 0 : wholeNumber(c, std::string("model.") + key);
    };
    id.tensorCount = count("tensor_count");
    id.parameterCount = count("parameter_count");
    for (const QJsonValue& s : model.value(QStringLiteral("file_sizes")).toArray())
        id.fileSizes.push_back(wholeNumber(s, "model.file_sizes"));
    plan.setIdentity(std::move(id));
    plan.setPreset(root.value(QStringLiteral("preset")).toString().toStdString());
    if (root.contains(QStringLiteral("target"))) {
        auto target = exportTargetFromName(root.value(QStringLiteral("target")).toString().toStdString());
        if (!target)
            throw bad("target", "expected llamacpp, gptqmodel, llmcompressor, compressed-tensors or json");
        plan.setTarget(*target);
    }

    const QJsonValue tiersV = root.value(QStringLiteral("tiers"));
    if (!tiersV.isArray())
        throw bad("tiers", "expected an array of format names");
    std::vector<std::string> tiers;
    for (const QJsonValue& t : tiersV.toArray()) {
        if (!t.isString() || t.toString().isEmpty())
            throw bad("tiers", "expected format names");
        tiers.push_back(t.toString().toStdString());
    }
    plan.setTiers(std::move(tiers));
    const QJsonValue methodsV = root.value(QStringLiteral("tier_methods"));
    if (!methodsV.isUndefined() && !methodsV.isObject())
        throw bad("tier_methods", "expected an object of tier -> method");
    const QJsonObject methods = methodsV.toObject();
    for (auto it = methods.begin(); it != methods.end(); ++it) {
        const std::string where = "tier_methods." + it.key().toStdString();
        const auto method = quantMethodFromName(it.value().toString().toStdString());
        if (!it.value().isString() || !method)
            throw bad(where, "expected rtn, gptq or awq");
        if (plan.tierIndex(it.key().toStdString()) < 0)
            throw bad(where, "names no tier of the plan");
        if (const std::string why = quantMethodProblem(*method, it.key().toStdString()); !why.empty())
            throw bad(where, why);
        plan.setTierMethod(it.key().toStdString(), *method);
    }

    std::vector<PlanRule> rules;
    int i = 0;
    for (const QJsonValue& r : root.value(QStringLiteral("rules")).toArray()) {
        const std::string where = "rules[" + std::to_string(i++) + "]";
        const QJsonObject o = r.toObject();
        PlanRule rule;
        if (o.value(QStringLiteral("regex")).isString()) {
            rule.pattern = o.value(QStringLiteral("regex")).toString().toStdString();
            // A saved rule must be usable: refuse it at load, not when the rules are applied.
            if (const std::string why = NamePattern::check(rule.pattern); !why.empty())
                throw bad(where + ".regex", why);
        } else if (o.value(QStringLiteral("role")).isString()) {
            rule.match = PlanRule::Match::Role;
            rule.pattern = o.value(QStringLiteral("role")).toString().toStdString();
        } else {
            throw bad(where, "needs \"regex\" or \"role\"");
        }
        rule.format = o.value(QStringLiteral("format")).toString().toStdString();
        if (rule.format.empty())
            throw bad(where + ".format", "missing");
        rules.push_back(std::move(rule));
    }
    plan.setRules(std::move(rules));

    const QJsonValue asg = root.value(QStringLiteral("assignments"));
    if (!asg.isObject())
        throw bad("assignments", "expected an object of tensor -> format");
    const QJsonObject a = asg.toObject();
    for (auto it = a.begin(); it != a.end(); ++it) {
        if (!it.value().isString() || it.value().toString().isEmpty())
            throw bad("assignments." + it.key().toStdString(), "expected a format name");
        plan.assign(it.key().toStdString(), it.value().toString().toStdString()); // no intermediate copy
    }
    return plan;
}

void savePlan(const Plan& plan, const std::filesystem::path& path)
{
    // Every write checked, fsynced, renamed, folder fsynced: a full disk leaves the old file in place.
    try {
        writeFileAtomically(path, planToJson(plan));
    } catch (const Error& e) {
        throw PlanFileError(PlanErrorKind::Io, path.string(), {}, std::nullopt, e.what());
    }
}

Plan loadPlan(const std::filesystem::path& path)
{
    std::string json;
    try {
        json = readRegularFile(path, kMaxPlanFileBytes, "file");
    } catch (const FormatError& e) {
        throw PlanFileError(e.code() == ErrorCode::Io ? PlanErrorKind::Io : PlanErrorKind::BadField, path.string(),
                            e.code() == ErrorCode::Io ? std::string() : std::string("file"), std::nullopt, e.detail());
    }
    return planFromJson(json, path.string());
}

bool planMatchesModel(const Plan& plan, const ModelLayout& model, std::string* why)
{
    auto fail = [&](const std::string& w) {
        if (why)
            *why = w;
        return false;
    };
    const auto& id = plan.identity();
    if (id.tensorCount != 0 && id.tensorCount != model.tensors.size())
        return fail("the plan was made for a model with " + std::to_string(id.tensorCount) +
                    " tensors, this one has " + std::to_string(model.tensors.size()));
    if (id.parameterCount != 0 && id.parameterCount != model.parameterCount())
        return fail("the plan was made for a model with " + std::to_string(id.parameterCount) +
                    " parameters, this one has " + std::to_string(model.parameterCount()));
    for (const auto& [t, f] : plan.assignments())
        if (!model.find(t))
            return fail("the model has no tensor named " + t);
    return true;
}

std::filesystem::path autosaveDirectory()
{
    const QString base = QStandardPaths::writableLocation(QStandardPaths::GenericDataLocation);
    return std::filesystem::path(base.toStdString()) / "quantscope" / "autosave";
}

std::filesystem::path autosavePath(const std::string& key)
{
    const QByteArray hash =
        QCryptographicHash::hash(QByteArray::fromStdString(key), QCryptographicHash::Sha1).toHex();
    return autosaveDirectory() / (hash.left(16).toStdString() + ".plan.json");
}

std::filesystem::path writeAutosave(const Plan& plan, const std::string& key)
{
    const auto path = autosavePath(key);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    savePlan(plan, path);
    return path;
}

std::optional<std::filesystem::path> newerAutosave(const std::string& key,
                                                   const std::filesystem::path& savedPlan)
{
    const auto path = autosavePath(key);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return std::nullopt;
    if (savedPlan.empty() || !std::filesystem::exists(savedPlan, ec))
        return path;
    const auto a = std::filesystem::last_write_time(path, ec);
    if (ec)
        return std::nullopt;
    const auto s = std::filesystem::last_write_time(savedPlan, ec);
    if (ec || a > s)
        return path;
    return std::nullopt;
}

void discardAutosave(const std::string& key)
{
    std::error_code ec;
    std::filesystem::remove(autosavePath(key), ec);
}

} // namespace qs

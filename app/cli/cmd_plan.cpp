// quantscope-cli plan: build a precision plan from a preset, rules or a byte budget and save it.
#include "app/cli/command.h"
#include "app/cli/plan_verify.h"
#include "app/cli/plan_gpufit.h"
#include "core/util/fileio.h"
#include "core/jobs/jobs.h"
#include "core/plan/budget.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/plan.h"
#include "core/plan/planio.h"
#include "core/plan/sensitivityfile.h"
#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QFile>
#include <QJsonArray>
#include <cstdio>
#include <map>
#include <optional>

namespace {

double gib(uint64_t b)
{
    return static_cast<double>(b) / (1ull << 30);
}

int runPlan(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("plan needs exactly one model PATH (or config.json)"));
    const bool byBudget = parser.isSet(QStringLiteral("budget"));
    const bool byGpu = parser.isSet(QStringLiteral("gpu"));
    if (byBudget && byGpu)
        return cli::fail(QStringLiteral("give either --budget or --gpu, not both"));
    if (const int code = cli::checkPlanVerifyOptions(parser))
        return code;

    qs::ExportTarget target = qs::ExportTarget::PlanJson;
    if (parser.isSet(QStringLiteral("target"))) {
        auto t = qs::exportTargetFromName(parser.value(QStringLiteral("target")).toStdString());
        if (!t)
            return cli::fail(QStringLiteral("--target needs llamacpp, gptqmodel, llmcompressor, compressed-tensors "
                                            "or json (the names 'export --to' takes)"));
        target = *t;
    }

    cli::ProgressPrinter progress(QStringLiteral("loading"));
    qs::JobControl job([&](double f, const std::string& stage) { progress.update(f, stage); });
    const qs::ModelLayout layout = qs::openLayout(pos[0].toStdString(), &job);

    // Presets and rules that the target cannot express are refused (exit 1) with the tensor and the
    // reason; tensors whose shape the format cannot store get the format they are stored in (notes).
    std::vector<std::string> notes;
    qs::Plan plan;
    const QString preset = parser.value(QStringLiteral("preset"));
    try {
        if (!preset.isEmpty()) {
            plan = qs::makePreset(preset.toStdString(), layout, target, &notes);
        } else {
            plan.setIdentity(qs::identityOf(layout));
            plan.setTarget(target);
            plan.setTiers(qs::defaultTiersFor(target));
        }
        if (parser.isSet(QStringLiteral("rules"))) {
            const std::string rulesPath = parser.value(QStringLiteral("rules")).toStdString();
            const auto rules =
                qs::parseRules(qs::readRegularFile(rulesPath, qs::kMaxRulesFileBytes, "rules"), rulesPath);
            // Without a preset, tensors no rule matches go to the first tier.
            qs::applyRules(plan, layout, rules, preset.isEmpty() ? plan.tiers().front() : std::string(), target,
                           &notes);
            plan.setRules(rules);
        }
        if (preset.isEmpty() && !parser.isSet(QStringLiteral("rules")) && !byBudget && !byGpu)
            plan = qs::makePreset(target == qs::ExportTarget::LlamaCpp || target == qs::ExportTarget::PlanJson
                                      ? "llama.cpp-Q4_K_M"
                                      : "all-INT4-g128-asym",
                                  layout, target, &notes);
    } catch (const qs::Error& e) {
        if (e.code() != qs::ErrorCode::BadValue)
            throw;
        return cli::fail(QString::fromStdString(e.what()));
    }
    target = plan.target(); // llama.cpp's mixes make plans for llama.cpp

    // Errors for the fit and the prediction: weight errors, or measured ΔKL (`sensitivity --measure kl`).
    qs::SensitivityTable table;
    if (parser.isSet(QStringLiteral("sensitivity")))
        table = qs::loadSensitivityTable(parser.value(QStringLiteral("sensitivity")).toStdString());
    const qs::ErrorTable& errors = table.errors;
    const bool klTable = parser.isSet(QStringLiteral("sensitivity")) && table.measure == qs::ErrorMeasure::DeltaKl;

    QJsonObject budgetJson;
    if (byBudget || byGpu) {
        qs::BudgetOptions budgetOptions;
        budgetOptions.tieFusedGroups = parser.isSet(QStringLiteral("fused")) || qs::targetFusesGroups(target);
        budgetOptions.target = target;
        const qs::BudgetProblem problem = qs::makeBudgetProblem(plan, layout, errors, budgetOptions);
        qs::BudgetSolution sol;
        uint64_t budget = 0;
        if (byBudget) {
            bool ok = false;
            budget = parser.value(QStringLiteral("budget")).toULongLong(&ok);
            if (!ok || budget == 0)
                return cli::fail(QStringLiteral("--budget needs a positive number of bytes"));
            qs::BudgetJob solve({problem, budget, {}});
            if (const int code = cli::runJob(solve, QStringLiteral("fitting")))
                return code;
            sol = solve.takeResult().solution;
            if (!sol.feasible)
                return cli::fail(QStringLiteral("no plan fits %1 bytes: the smallest tiers need %2 bytes")
                                     .arg(budget)
                                     .arg(sol.bytes));
        } else {
            const int code = cli::fitPlanToGpu(parser, layout, plan, problem, budgetJson, sol, budget);
            if (code != 0 || !sol.feasible) {
                if (parser.isSet(QStringLiteral("json")) && !budgetJson.isEmpty()) {
                    QJsonObject root;
                    root[QStringLiteral("model")] = pos[0];
                    root[QStringLiteral("fits")] = false;
                    root[QStringLiteral("budget")] = budgetJson;
                    cli::printJson(root);
                }
                return code != 0 ? code : 1;
            }
        }
        plan = qs::applySolution(plan, problem, sol);
        if (parser.isSet(QStringLiteral("curve"))) {
            QJsonArray curve;
            for (const auto& p : qs::tradeoffCurve(problem))
                curve.append(QJsonArray{static_cast<qint64>(p.bytes), p.error});
            budgetJson[QStringLiteral("curve")] = curve;
        }
        budgetJson[QStringLiteral("budget_bytes")] = static_cast<qint64>(budget);
        budgetJson[QStringLiteral("measure")] = klTable ? QStringLiteral("kl") : QStringLiteral("weight");
        budgetJson[QStringLiteral("weights_bytes")] = static_cast<qint64>(sol.bytes);
        budgetJson[QStringLiteral("error")] = sol.error;
        budgetJson[QStringLiteral("lower_bound")] = sol.lowerBound;
        budgetJson[QStringLiteral("gap")] = sol.gap;
        budgetJson[QStringLiteral("gap_relative")] = sol.error > 0 ? sol.gap / sol.error : 0.0;
        budgetJson[QStringLiteral("optimal")] = sol.optimal;
    }

    // --method FORMAT=METHOD: the tier's quantization method (the tier is added when missing).
    for (const QString& m : parser.values(QStringLiteral("method"))) {
        const qsizetype eq = m.lastIndexOf(QLatin1Char('='));
        const auto method = eq > 0 ? qs::quantMethodFromName(m.mid(eq + 1).toStdString()) : std::nullopt;
        if (!method)
            return cli::fail(QStringLiteral("--method needs FORMAT=rtn|gptq|awq, got '%1'").arg(QString::fromStdString(cli::shown(m.toStdString()))));
        const std::string format = m.left(eq).toStdString();
        if (!qs::findFormat(format))
            return cli::fail(QStringLiteral("--method: unknown format '%1'").arg(QString::fromStdString(cli::shown(m.left(eq).toStdString()))));
        if (const std::string why = qs::quantMethodProblem(*method, format); !why.empty())
            return cli::fail(QStringLiteral("--method %1: %2").arg(QString::fromStdString(cli::shown(m.toStdString())), QString::fromStdString(why)));
        plan.addTier(format);
        plan.setTierMethod(format, *method);
    }

    qs::CheckOptions checkOptions = qs::checkOptionsFor(target);
    checkOptions.fusedGroups |= parser.isSet(QStringLiteral("fused"));
    const auto issues = qs::checkPlan(plan, layout, checkOptions);
    const qs::WeightSummary weights = qs::summarizeWeights(layout, qs::planBytesFn(plan));
    if (parser.isSet(QStringLiteral("out")))
        qs::savePlan(plan, parser.value(QStringLiteral("out")).toStdString());
    // With ΔKL: the plan's predicted KL divergence (the parts summed), and measured with --verify.
    std::optional<qs::PlanErrorSummary> prediction;
    if (klTable)
        prediction = qs::planError(plan, layout, errors);
    QJsonObject verifyJson;
    if (const int code = cli::runPlanVerify(parser, pos[0], plan,
                                            prediction ? std::optional<double>(prediction->error) : std::nullopt,
                                            &verifyJson))
        return code;

    std::map<std::string, uint64_t> perFormat;
    for (const auto& [t, f] : plan.assignments())
        ++perFormat[f];
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root;
        root[QStringLiteral("model")] = pos[0];
        root[QStringLiteral("preset")] = QString::fromStdString(plan.preset());
        root[QStringLiteral("target")] = QString::fromLatin1(qs::exportTargetName(plan.target()));
        QJsonArray noteArray;
        for (const auto& n : notes)
            noteArray.append(QString::fromStdString(n));
        root[QStringLiteral("notes")] = noteArray;
        root[QStringLiteral("weights_bytes")] = static_cast<qint64>(weights.bytes);
        root[QStringLiteral("parameters")] = static_cast<qint64>(weights.parameters);
        root[QStringLiteral("bits_per_weight")] =
            weights.parameters
                ? 8.0 * static_cast<double>(weights.bytes) / static_cast<double>(weights.parameters)
                : 0.0;
        QJsonObject counts;
        for (const auto& [f, n] : perFormat)
            counts[QString::fromStdString(f)] = static_cast<qint64>(n);
        root[QStringLiteral("tensors_per_format")] = counts;
        QJsonObject methods;
        for (const auto& [tier, method] : plan.tierMethods())
            methods[QString::fromStdString(tier)] = QString::fromLatin1(qs::quantMethodName(method));
        root[QStringLiteral("tier_methods")] = methods;
        QJsonObject asg;
        for (const auto& [t, f] : plan.assignments())
            asg[QString::fromStdString(t)] = QString::fromStdString(f);
        root[QStringLiteral("assignments")] = asg;
        QJsonArray iss;
        for (const auto& i : issues) {
            QJsonObject o;
            o[QStringLiteral("kind")] = QString::fromLatin1(qs::planIssueKindName(i.kind));
            o[QStringLiteral("message")] = QString::fromStdString(i.message);
            if (!i.fixes.empty())
                o[QStringLiteral("fix")] = QString::fromStdString(i.fixes.front().label);
            iss.append(o);
        }
        root[QStringLiteral("issues")] = iss;
        if (!budgetJson.isEmpty())
            root[QStringLiteral("budget")] = budgetJson;
        if (prediction) {
            QJsonObject pk;
            pk[QStringLiteral("kl")] = prediction->error;
            pk[QStringLiteral("measured_tensors")] = static_cast<qint64>(prediction->measured);
            pk[QStringLiteral("tensors_without_data")] = static_cast<qint64>(prediction->proxied + prediction->missing);
            root[QStringLiteral("predicted")] = pk;
        }
        if (!verifyJson.isEmpty())
            root[QStringLiteral("verify")] = verifyJson;
        if (parser.isSet(QStringLiteral("out")))
            root[QStringLiteral("out")] = parser.value(QStringLiteral("out"));
        cli::printJson(root);
        return 0;
    }
    std::printf("%s: %s, %zu tensors planned, weights %llu bytes = %.3f GiB (%.3f bits per weight)\n",
                qPrintable(pos[0]), plan.preset().empty() ? "custom plan" : plan.preset().c_str(),
                plan.assignments().size(), static_cast<unsigned long long>(weights.bytes), gib(weights.bytes),
                weights.parameters
                    ? 8.0 * static_cast<double>(weights.bytes) / static_cast<double>(weights.parameters)
                    : 0.0);
    for (const auto& [f, n] : perFormat)
        std::printf("  %-16s %llu tensors%s\n", f.c_str(), static_cast<unsigned long long>(n),
                    plan.tierMethod(f) == qs::QuantMethod::Rtn
                        ? ""
                        : (std::string(" (") + qs::quantMethodLabel(plan.tierMethod(f)) + ")").c_str());
    if (!budgetJson.isEmpty())
        std::printf("budget %lld bytes: error %.6g, lower bound %.6g, gap %.3g%s\n",
                    static_cast<long long>(budgetJson[QStringLiteral("budget_bytes")].toInteger()),
                    budgetJson[QStringLiteral("error")].toDouble(),
                    budgetJson[QStringLiteral("lower_bound")].toDouble(),
                    budgetJson[QStringLiteral("gap")].toDouble(),
                    budgetJson[QStringLiteral("optimal")].toBool() ? " (optimal)" : "");
    if (prediction)
        std::printf("predicted KL divergence %.6f (the sum of measured ΔKL over %zu tensors%s)\n", prediction->error,
                    prediction->measured,
                    prediction->proxied + prediction->missing ? "; some tensors have no ΔKL" : "");
    if (!verifyJson.isEmpty()) {
        const QJsonObject& v = verifyJson;
        std::printf("KL divergence %s%.6f measured (mean over %lld positions of %lld chunks of %lld tokens; median "
                    "%.6f, p99 %.6f), perplexity %.4f -> %.4f\n",
                    prediction ? qPrintable(QStringLiteral("%1 predicted, ").arg(prediction->error, 0, 'f', 6)) : "",
                    v[QStringLiteral("measured_kl")].toDouble(), v[QStringLiteral("scored")].toInteger(),
                    v[QStringLiteral("chunks")].toInteger(), v[QStringLiteral("ctx")].toInteger(),
                    v[QStringLiteral("kld_median")].toDouble(), v[QStringLiteral("kld_p99")].toDouble(),
                    v[QStringLiteral("perplexity")].toDouble(), v[QStringLiteral("perplexity_quantized")].toDouble());
    }
    for (size_t i = 0; i < notes.size() && i < 8; ++i)
        std::printf("note: %s\n", notes[i].c_str());
    if (notes.size() > 8)
        std::printf("note: ... and %zu more (--json lists them all)\n", notes.size() - 8);
    for (const auto& i : issues)
        std::printf("warning: %s%s%s\n", i.message.c_str(), i.fixes.empty() ? "" : " -> ",
                    i.fixes.empty() ? "" : i.fixes.front().label.c_str());
    if (parser.isSet(QStringLiteral("out")))
        std::printf("saved %s\n", qPrintable(parser.value(QStringLiteral("out"))));
    return 0;
}

const CliRegistrar planCommand(
    {"plan",
     "plan PATH [--target T] [--preset NAME] [--rules FILE] [--budget BYTES | --gpu NAME [--ctx N | --max-error E] [--batch N] [--kv-type auto|T] [--runtime R]] "
     "[--sensitivity FILE] [--verify --text FILE [--verify-ctx N] [--verify-chunks N] [--verify-first-chunk N]] "
     "[--method FORMAT=METHOD] [--out plan.json] [--json]",
     "build a precision plan (preset, rules, fit to a budget) and save it",
     [](QCommandLineParser& p) {
         std::string presets;
         for (const auto& n : qs::presetNames())
             presets += (presets.empty() ? "" : ", ") + n;
         p.addOption(
             {QStringLiteral("preset"),
              QStringLiteral("Preset: %1 (all-FORMAT for any format).").arg(QString::fromStdString(presets)),
              QStringLiteral("NAME")});
         p.addOption({QStringLiteral("target"),
                      QStringLiteral("Plan for this tool (the names 'export --to' takes: llamacpp, gptqmodel, "
                                     "llmcompressor, compressed-tensors, json = any): only formats it can "
                                     "express, fused groups kept together where its runtime fuses them."),
                      QStringLiteral("T")});
         p.addOption({QStringLiteral("rules"),
                      QStringLiteral("Rules file (REGEX=FORMAT / role:ROLE=FORMAT lines or JSON)."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("budget"), QStringLiteral("Fit the weights into this many bytes."),
                      QStringLiteral("BYTES")});
         cli::addPlanGpuFitOptions(p);
         p.addOption(
             {QStringLiteral("sensitivity"),
              QStringLiteral("Errors for --budget/--gpu from 'quantscope-cli sensitivity --json' (else a size "
                             "proxy); with '--measure kl' results the fit minimises the summed ΔKL and the plan's "
                             "predicted KL divergence is printed."),
              QStringLiteral("FILE")});
         p.addOption(
             {QStringLiteral("curve"), QStringLiteral("With --budget/--gpu and --json: add the size/error "
                                                      "trade-off curve ([bytes, error] points).")});
         p.addOption({QStringLiteral("fused"),
                      QStringLiteral("Fused tensors (q/k/v, gate/up, experts) share a format: checked, and "
                                     "kept by --budget/--gpu (implied by the vLLM-style targets).")});
         cli::addPlanVerifyOptions(p);
         p.addOption({QStringLiteral("method"),
                      QStringLiteral("Quantize a tier with a method: FORMAT=rtn|gptq|awq (repeatable; GPTQ needs an "
                                     "integer format)."),
                      QStringLiteral("FORMAT=METHOD")});
         p.addOption({QStringLiteral("out"), QStringLiteral("Save the plan here."), QStringLiteral("FILE")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
         p.addPositionalArgument(QStringLiteral("PATH"),
                                 QStringLiteral("Model file or folder, or config.json."));
     },
     runPlan, true});

} // namespace

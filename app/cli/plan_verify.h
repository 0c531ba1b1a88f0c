#pragma once
// `quantscope-cli plan ... --verify --text FILE`: the plan's predicted KL divergence (the sum of measured
// ΔKL, `--sensitivity` from `sensitivity --measure kl`) beside the KL divergence the evaluation job measures.
#include <QJsonObject>
#include <optional>

class QCommandLineParser;
class QString;

namespace qs {
class Plan;
}

namespace cli {

void addPlanVerifyOptions(QCommandLineParser& parser);
// Checks the options before any work; returns 0 or fail()'s exit code.
int checkPlanVerifyOptions(const QCommandLineParser& parser);
// Measures the plan's KL divergence when --verify is set (*out gets the "verify" JSON object); the
// predicted value is added when known. Returns 0 or an exit code.
int runPlanVerify(const QCommandLineParser& parser, const QString& modelPath, const qs::Plan& plan,
                  std::optional<double> predictedKl, QJsonObject* out);

} // namespace cli

// Comparing rounding methods on one plan (core/infer/methodcompare.h), on code-3m: the RTN row equals an
// independent evaluation of the plan's fake quantization (the Q4_0 file holds exactly those values), AWQ
// beats RTN, the original's distributions are computed once, a method that cannot run is reported with the
// reason while the others run, the temporary outputs are removed, and a cancel ends the job as Cancelled.
#include "core/infer/evaluate.h"
#include "core/infer/methodcompare.h"
#include "core/model/model.h"
#include "core/plan/plan.h"

#include <QDir>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>

namespace {

const std::string kCode3m = QS_TEST_DATA "/code-3m/quantscope-code-3m-Q8_0.gguf";
const std::string kCodeText = QS_TEST_DATA "/eval/python-textwrap.txt";

qs::Plan allQ40(const qs::Model& model)
{
    qs::Plan plan;
    for (const auto& t : model.tensors())
        if (t.shape.size() == 2 && t.name.starts_with("blk."))
            plan.assign(t.name, "Q4_0");
    return plan;
}

} // namespace

class TestMethodCompare : public QObject {
    Q_OBJECT

private slots:
    void rtnAndAwqAgainstIndependentEvaluation()
    {
        QTemporaryDir work;
        qs::MethodComparisonParams p;
        p.model = qs::openModel(kCode3m);
        p.plan = allQ40(*p.model);
        p.textFile = kCodeText;
        p.ctx = 128;
        p.maxChunks = 4;
        p.calibrationFile = kCodeText;
        p.calibrationCtx = 128;
        p.calibrationChunks = 4;
        p.workDir = work.path().toStdString();
        // A method that cannot run is reported with the reason (here: GPTQ without a calibration text).
        qs::MethodComparisonParams noCalibration = p;
        noCalibration.methods = {qs::QuantMethod::Gptq};
        noCalibration.calibrationFile.clear();
        const qs::MethodComparisonResult refused = qs::compareMethods(noCalibration);
        QCOMPARE(refused.outcomes.size(), size_t(1));
        QVERIFY2(refused.outcomes[0].error.find("calibration text") != std::string::npos,
                 refused.outcomes[0].error.c_str());

        p.methods = {qs::QuantMethod::Rtn, qs::QuantMethod::Awq};
        const qs::MethodComparisonResult r = qs::compareMethods(p);
        QCOMPARE(r.target, std::string("gguf"));
        QCOMPARE(r.outcomes.size(), size_t(2));
        for (const auto& o : r.outcomes)
            QVERIFY2(o.ok(), o.error.c_str());
        const qs::MethodOutcome& rtn = r.outcomes[0];
        const qs::MethodOutcome& awq = r.outcomes[1];
        QCOMPARE(rtn.method, qs::QuantMethod::Rtn);
        QVERIFY(!rtn.eval.baselineReused);
        QVERIFY(awq.eval.baselineReused); // the original's distributions once
        QCOMPARE(rtn.weightBytes, awq.weightBytes);

        // Independent: the plan's fake quantization evaluated in memory.
        qs::EvalParams e;
        e.model = p.model;
        e.plan = p.plan;
        e.textFile = kCodeText;
        e.ctx = 128;
        e.maxChunks = 4;
        const qs::EvalResult direct = qs::evaluate(e);
        QCOMPARE(rtn.eval.positions, direct.positions);
        QCOMPARE(rtn.eval.perplexity, direct.perplexity);
        QVERIFY2(std::fabs(rtn.eval.kldMean - direct.kldMean) <= 1e-9 * direct.kldMean,
                 qPrintable(QStringLiteral("%1 vs %2").arg(rtn.eval.kldMean).arg(direct.kldMean)));
        QVERIFY(std::fabs(rtn.eval.perplexityQuantized - direct.perplexityQuantized) <= 1e-9 * direct.perplexity);
        // AWQ buys something over RTN on this plan.
        QVERIFY2(awq.eval.kldMean < rtn.eval.kldMean,
                 qPrintable(QStringLiteral("AWQ %1, RTN %2").arg(awq.eval.kldMean).arg(rtn.eval.kldMean)));
        // Nothing is left in the work folder.
        QVERIFY(QDir(work.path()).isEmpty());
    }

    void cancelEndsTheJob()
    {
        QTemporaryDir work;
        qs::MethodComparisonParams p;
        p.model = qs::openModel(kCode3m);
        p.plan = allQ40(*p.model);
        p.methods = {qs::QuantMethod::Rtn, qs::QuantMethod::Awq};
        p.textFile = kCodeText;
        p.ctx = 128;
        p.maxChunks = 2;
        p.calibrationFile = kCodeText;
        p.workDir = work.path().toStdString();
        qs::MethodComparisonJob job(p);
        int reports = 0;
        job.control().setProgressHandler([&](const qs::JobProgress&) {
            if (++reports == 3)
                job.cancel();
        });
        QCOMPARE(job.run(), qs::JobStatus::Cancelled);
        QVERIFY(QDir(work.path()).isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestMethodCompare)
#include "tst_methodcompare.moc"

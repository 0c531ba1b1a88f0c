// Regular expressions from rules files and plans (core/util/namepattern.h) match in linear time: patterns
// that make backtracking engines hang or overflow the stack on long names finish at once, back-references
// are refused with a clear message, and a saved plan with an unusable regex is refused when it is loaded.
#include "core/plan/plan.h"
#include "core/plan/planio.h"
#include "core/util/error.h"
#include "core/util/namepattern.h"

#include <QtTest>

using namespace qs;

class TestNamePattern : public QObject {
    Q_OBJECT

private slots:
    void matchesLikeARegex()
    {
        const NamePattern p(R"(blk\.\d+\.attn_(q|k|v)\.weight)");
        QVERIFY(p.search("blk.12.attn_k.weight"));
        QVERIFY(!p.search("blk.12.attn_output.weight"));
        QVERIFY(NamePattern("ffn_down").search("blk.0.ffn_down.weight")); // search, not whole-name match
        QVERIFY(!NamePattern("^ffn_down").search("blk.0.ffn_down.weight"));
    }

    // The patterns of the audit on a 1 MB name: a backtracking engine overflows its stack or never returns.
    void pathologicalPatternsOnHugeNames()
    {
        const std::string huge(1 << 20, 'a');
        QVERIFY(!NamePattern("^(.*.*)*X$").search(huge));
        QVERIFY(!NamePattern("^(a|aa)+$").search(huge + "b"));
        QVERIFY(NamePattern("(a+)+").search(huge));
    }

    void backReferencesRefused()
    {
        bool refused = false;
        try {
            NamePattern p(R"((.*)\1\1\1)");
        } catch (const Error& e) {
            refused = e.code() == ErrorCode::BadValue &&
                      QString::fromUtf8(e.what()).contains(QStringLiteral("back-references"));
        }
        QVERIFY(refused);
        QVERIFY(!NamePattern::check(R"((a)\1)").empty());
        QVERIFY(!NamePattern::check("(unclosed").empty());
        QVERIFY(!NamePattern::check(std::string(kMaxPatternLength + 1, 'a')).empty());
        QVERIFY(NamePattern::check("blk\\.[0-9]+").empty());
    }

    void rulesOnAHugeTensorName()
    {
        ModelLayout layout;
        TensorInfo t;
        t.name = std::string(1 << 20, 'a') + ".weight";
        t.shape = {256, 256};
        t.dtype = DType::F16;
        t.bytes = 256 * 256 * 2;
        layout.tensors.push_back(t);
        Plan plan;
        std::vector<PlanRule> rules = {{PlanRule::Match::Regex, "^(.*.*)*X$", "Q8_0"},
                                       {PlanRule::Match::Regex, "weight$", "Q4_K"}};
        applyRules(plan, layout, rules);
        QCOMPARE(plan.formatOf(t.name).value_or(""), std::string("Q4_K"));
        QVERIFY_THROWS_EXCEPTION(Error, applyRules(plan, layout, {{PlanRule::Match::Regex, R"((.)\1)", "Q8_0"}}));
    }

    void savedPlanWithBadRegexRefusedAtLoad()
    {
        const std::string json = R"({"format": "quantscope-plan", "version": 1, "tiers": ["Q4_K"],
            "rules": [{"regex": "(x)\\1", "format": "Q4_K"}], "assignments": {}})";
        bool refused = false;
        try {
            planFromJson(json, "plan.json");
        } catch (const PlanFileError& e) {
            refused = QString::fromUtf8(e.what()).contains(QStringLiteral("rules[0].regex"));
        }
        QVERIFY(refused);
    }
};

QTEST_APPLESS_MAIN(TestNamePattern)
#include "tst_namepattern.moc"

// UTF-8 validation and control-character escaping for names that come from files (issue 14).
#include "core/util/strings.h"

#include <QTest>

class TestStrings : public QObject {
    Q_OBJECT
private slots:
    void utf8Validity()
    {
        QVERIFY(qs::isValidUtf8("blk.0.attn_q.weight"));
        QVERIFY(qs::isValidUtf8("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80")); // é, 中, 😀
        QVERIFY(qs::isValidUtf8(""));
        QVERIFY(!qs::isValidUtf8("\xff"));
        QVERIFY(!qs::isValidUtf8("\xc3"));             // truncated sequence
        QVERIFY(!qs::isValidUtf8("\xc0\xaf"));         // overlong '/'
        QVERIFY(!qs::isValidUtf8("\xed\xa0\x80"));     // UTF-16 surrogate D800
        QVERIFY(!qs::isValidUtf8("\xf4\x90\x80\x80")); // above U+10FFFF
        QVERIFY(!qs::isValidUtf8("a\x80z"));           // stray continuation byte
    }

    void escaping()
    {
        QCOMPARE(qs::escapeControl("plain.name"), std::string("plain.name"));
        QCOMPARE(qs::escapeControl("a\x1b[2Jb"), std::string("a\\x1b[2Jb"));
        QCOMPARE(qs::escapeControl(std::string("nul\0x", 5)), std::string("nul\\x00x"));
        QCOMPARE(qs::escapeControl("tab\tnl\ndel\x7f"), std::string("tab\\x09nl\\x0adel\\x7f"));
        // C1 control U+009B (CSI) as UTF-8 is escaped; U+00A0 and letters beyond ASCII are kept.
        QCOMPARE(qs::escapeControl("\xc2\x9b" "31m"), std::string("\\xc2\\x9b31m"));
        QCOMPARE(qs::escapeControl("\xc2\xa0\xc3\xa9"), std::string("\xc2\xa0\xc3\xa9"));
        // Bytes that are not UTF-8 are escaped one by one.
        QCOMPARE(qs::escapeControl("x\xff\xc3"), std::string("x\\xff\\xc3"));
    }
};

QTEST_APPLESS_MAIN(TestStrings)
#include "tst_strings.moc"

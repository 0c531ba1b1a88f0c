// The model path in the summary dock (issue 13 #7): a long path is elided in the middle with an ellipsis,
// keeping the root and the file name; the full path stays in the tooltip and the copy action.
#include "widgets/elidedlabel.h"

#include <QAction>
#include <QClipboard>
#include <QGuiApplication>
#include <QtTest>

using namespace qs;

class TestElidedLabel : public QObject {
    Q_OBJECT
private slots:
    void elidesInTheMiddle()
    {
        const QString path = QStringLiteral("/home/someone/models/checkpoints/meta-llama/Llama-3.1-8B-Instruct/"
                                            "snapshots/0e9e39f249a16976918f6564b8830bc894c89659/model.safetensors");
        ElidedLabel label(path);
        label.resize(260, label.sizeHint().height());
        label.show();
        QVERIFY(QTest::qWaitForWindowExposed(&label));
        const QString shown = label.text();
        QVERIFY2(shown.contains(QChar(0x2026)), qPrintable(shown));
        QVERIFY2(shown.startsWith(QStringLiteral("/home")), qPrintable(shown));
        QVERIFY2(shown.endsWith(QStringLiteral("model.safetensors")), qPrintable(shown));
        QVERIFY(label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width());
        QCOMPARE(label.toolTip(), path);
        QCOMPARE(label.fullText(), path);

        // Wide enough: the whole path, no ellipsis.
        label.resize(label.fontMetrics().horizontalAdvance(path) + 20, label.height());
        QTRY_COMPARE(label.text(), path);

        // Copy gives the full path, not the shown text.
        QCOMPARE(label.actions().size(), 1);
        label.actions().front()->trigger();
        QCOMPARE(QGuiApplication::clipboard()->text(), path);
    }
};

QTEST_MAIN(TestElidedLabel)
#include "tst_elidedlabel.moc"

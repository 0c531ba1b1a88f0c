// The Quantscope workbench. Placeholder window until the main window lands.
#include <QApplication>
#include <QLabel>

int main(int argc, char* argv[])
{
    QApplication app(argc, argv);
    QLabel label(QStringLiteral("Quantscope"));
    label.show();
    return app.exec();
}

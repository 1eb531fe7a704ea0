/* The smallest program to carry tests/wine/version.rc. */
int main(void) { return 0; }

/* test_envelope.c - replaced below. */
int main(void) { return 0; }

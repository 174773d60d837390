/*
 * nnp is the entrypoint of the offline nonewprivs test image. It is installed
 * setuid root; critest runs it as a non-root user with and without
 * no_new_privs and checks the effective uid it prints.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}

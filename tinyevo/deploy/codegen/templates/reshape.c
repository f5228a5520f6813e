/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output)
{
    memmove(output, input, ${SIZE});
}

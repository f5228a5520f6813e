/* ${COMMENT} */
static void ${SYMBOL}(const int8_t *input, int8_t *output)
{
    memmove(output, input, ${SIZE});
}

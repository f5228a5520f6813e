/* ${COMMENT}
 * Every weight and bias is zero: the output is the constant ${VALUE}. */
static void ${SYMBOL}(int8_t *output)
{
    memset(output, ${VALUE}, ${SIZE});
}
